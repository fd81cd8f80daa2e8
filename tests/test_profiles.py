"""Device profiles: every required profile loads; detection from fixture files."""
from __future__ import annotations

import pytest

from assistant.errors import ProfileNotFoundError
from assistant.profiles import detect_profile, list_profiles, load_profile, resolve_profile

REQUIRED = ["raspberry-pi-4-2gb", "raspberry-pi-4-4gb", "raspberry-pi-4-8gb", "raspberry-pi-5-4gb",
            "raspberry-pi-5-8gb", "raspberry-pi-5-16gb", "jetson-orin-nano-8gb", "laptop-8gb", "laptop-16gb"]


@pytest.mark.parametrize("name", REQUIRED)
def test_required_profiles_load_and_are_sane(name):
    profile = load_profile(name)
    assert profile.name == name
    assert 0 < profile.ram_budget_mb < profile.ram_mb
    assert profile.max_context >= 512 and profile.rag_passages >= 1
    assert set(REQUIRED) <= set(list_profiles())


def test_unknown_profile_is_a_clear_error():
    with pytest.raises(ProfileNotFoundError, match="unknown profile 'toaster'"):
        load_profile("toaster")


def fake_root(tmp_path, model=None, tegra=None):
    if model is not None:
        (tmp_path / "proc" / "device-tree").mkdir(parents=True)
        # The real file ends with a NUL byte.
        (tmp_path / "proc" / "device-tree" / "model").write_bytes(model.encode() + b"\x00")
    if tegra is not None:
        (tmp_path / "etc").mkdir(parents=True)
        (tmp_path / "etc" / "nv_tegra_release").write_text(tegra)
    return tmp_path


@pytest.mark.parametrize("model, ram_mb, expected", [
    ("Raspberry Pi 4 Model B Rev 1.4", 1850, "raspberry-pi-4-2gb"),
    ("Raspberry Pi 4 Model B Rev 1.5", 3790, "raspberry-pi-4-4gb"),
    ("Raspberry Pi 4 Model B Rev 1.4", 7810, "raspberry-pi-4-8gb"),
    ("Raspberry Pi 5 Model B Rev 1.0", 8060, "raspberry-pi-5-8gb"),
    ("Raspberry Pi 5 Model B Rev 1.1", 16200, "raspberry-pi-5-16gb"),
])
def test_detects_raspberry_pi_from_device_tree(tmp_path, model, ram_mb, expected):
    profile = detect_profile(system_root=fake_root(tmp_path, model=model), ram_mb=ram_mb)
    assert profile.name == expected
    assert "Raspberry Pi" in profile.detected_from


def test_detects_jetson_from_tegra_release(tmp_path):
    root = fake_root(tmp_path, tegra="# R36 (release), REVISION: 3.0, GCID: 36923193, BOARD: generic, EABI: aarch64")
    profile = detect_profile(system_root=root, ram_mb=7600)
    assert profile.name == "jetson-orin-nano-8gb"
    assert "nv_tegra_release" in profile.detected_from


@pytest.mark.parametrize("ram_mb, expected", [(7900, "laptop-8gb"), (15800, "laptop-16gb"), (64000, "laptop-16gb")])
def test_generic_computer_falls_back_to_laptop_by_ram(tmp_path, ram_mb, expected):
    assert detect_profile(system_root=tmp_path, ram_mb=ram_mb).name == expected


def test_named_profile_overrides_detection(tmp_path):
    root = fake_root(tmp_path, model="Raspberry Pi 5 Model B Rev 1.0")
    assert resolve_profile("laptop-8gb", system_root=root).name == "laptop-8gb"


def test_threads_never_exceed_available_cpus():
    pi = load_profile("raspberry-pi-4-4gb")
    assert pi.effective_threads(available_cpus=2) == 2
    assert pi.effective_threads(available_cpus=8) == 4
    assert load_profile("laptop-16gb").effective_threads(available_cpus=6) == 6
