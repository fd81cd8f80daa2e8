"""Device profiles: what the hardware allows, loaded from ``profiles/*.toml``, and detection
of the running device (Raspberry Pi from the device tree, Jetson from its release file,
otherwise a laptop profile by RAM)."""
from __future__ import annotations

import os
import sys
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Optional

import psutil

from assistant.errors import ProfileNotFoundError

AUTO = "auto"


@dataclass(frozen=True)
class DeviceProfile:
    """Resources of one device class and the defaults they imply."""

    name: str
    description: str
    ram_mb: int
    ram_budget_mb: int
    cores: int
    arch: str
    threads: int
    max_context: int
    training_allowed: bool
    training_budget_s: int
    rag_passages: int
    rag_passage_tokens: int
    lora_rank: int
    lora_alpha: int
    queue_size: int = 4  # requests that may wait their turn (a household's phone, page and scripts burst)
    kv_cache_type: str = "f16"  # f16 | q8_0 (half the KV cache; measured in benchmarks/bench_kv_cache.py)
    n_batch: int = 512  # prompt tokens per llama.cpp batch (measured in benchmarks/bench_prefill.py)
    detected_from: Optional[str] = field(default=None, compare=False)

    def effective_threads(self, available_cpus: Optional[int] = None) -> int:
        """Threads to use here: the profile's, capped by the CPUs this process may run on
        (a laptop acting as a 4-core Pi must not oversubscribe 2 cores)."""
        cpus = available_cpus or _available_cpus()
        wanted = self.threads if self.threads > 0 else cpus
        return max(1, min(wanted, cpus))


def _available_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def bundled_profiles_dir() -> Path:
    """The profiles shipped with the package: the repo's ``profiles/`` or the installed share dir."""
    candidates = [
        Path(__file__).resolve().parent.parent / "profiles",
        Path(sys.prefix) / "share" / "assistant" / "profiles",
    ]
    for candidate in candidates:
        if candidate.is_dir():
            return candidate
    return candidates[0]


def list_profiles(profiles_dir: Optional[Path] = None) -> list[str]:
    """Names of all available profiles, sorted."""
    folder = profiles_dir or bundled_profiles_dir()
    return sorted(p.stem for p in folder.glob("*.toml"))


def load_profile(name: str, profiles_dir: Optional[Path] = None) -> DeviceProfile:
    """Load one profile by its file name (without ``.toml``)."""
    folder = profiles_dir or bundled_profiles_dir()
    path = folder / f"{name}.toml"
    if not path.is_file():
        known = ", ".join(list_profiles(folder)) or "none"
        raise ProfileNotFoundError(f"unknown profile '{name}' (known: {AUTO}, {known})", param="profile")
    with path.open("rb") as handle:
        data = tomllib.load(handle)
    data.setdefault("name", name)
    return DeviceProfile(**data)


def resolve_profile(name: str, profiles_dir: Optional[Path] = None, system_root: Path = Path("/")) -> DeviceProfile:
    """``auto`` detects the running device; any other name loads that profile."""
    if name == AUTO:
        return detect_profile(profiles_dir, system_root)
    return load_profile(name, profiles_dir)


def _read_text(path: Path) -> Optional[str]:
    try:
        return path.read_text(errors="replace").replace("\x00", "").strip()
    except OSError:
        return None


def _nearest_by_ram(prefix: str, ram_mb: int, sizes_gb: list[int]) -> str:
    """Pick the board variant whose nominal RAM is closest to what the OS reports
    (the OS sees a little less than the nominal size)."""
    best = min(sizes_gb, key=lambda gb: abs(gb * 1024 - ram_mb))
    return f"{prefix}-{best}gb"


def detect_profile_name(system_root: Path = Path("/"), ram_mb: Optional[int] = None) -> tuple[str, str]:
    """Return (profile name, what it was detected from) for the device under ``system_root``."""
    ram_mb = ram_mb or psutil.virtual_memory().total // (1024 * 1024)
    model = _read_text(system_root / "proc" / "device-tree" / "model")
    if model and "Raspberry Pi 5" in model:
        return _nearest_by_ram("raspberry-pi-5", ram_mb, [4, 8, 16]), f"device tree: {model}"
    if model and "Raspberry Pi 4" in model:
        return _nearest_by_ram("raspberry-pi-4", ram_mb, [2, 4, 8]), f"device tree: {model}"
    tegra = _read_text(system_root / "etc" / "nv_tegra_release")
    if tegra is not None:
        return "jetson-orin-nano-8gb", f"/etc/nv_tegra_release: {tegra.splitlines()[0] if tegra else 'present'}"
    name = "laptop-16gb" if ram_mb >= 12 * 1024 else "laptop-8gb"
    return name, f"generic computer with {ram_mb} MB RAM"


def detect_profile(profiles_dir: Optional[Path] = None, system_root: Path = Path("/"),
                   ram_mb: Optional[int] = None) -> DeviceProfile:
    """Detect the running device and load its profile, noting what it was detected from."""
    name, reason = detect_profile_name(system_root, ram_mb)
    return replace(load_profile(name, profiles_dir), detected_from=reason)
