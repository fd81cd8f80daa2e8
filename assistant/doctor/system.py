"""Checks of the device itself: profile, RAM, swap, CPU features against the llama.cpp
build, temperature and throttling, disk. Every file is read under ``settings.system_root``."""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Optional

from assistant.doctor import FAIL, OK, WARN, CheckResult
from assistant.errors import AssistantError
from assistant.models.build_info import build_has_amx, cpu_has_amx, llama_build_features
from assistant.profiles import AUTO, DeviceProfile, detect_profile_name, load_profile
from assistant.settings import Settings

MB_PER_KB = 1024
HOT_C = 80.0  # Pi 4 and Pi 5 firmware starts throttling the ARM cores at 80 °C
# bits of `vcgencmd get_throttled`; the same conditions 16 bits higher mean "since boot"
THROTTLE_BITS = {0: "under-voltage", 1: "ARM frequency capped", 2: "throttled", 3: "soft temperature limit"}
# CPU flag in /proc/cpuinfo (the kernel's spelling) -> feature name in llama.cpp's system info
ARM_FEATURES = {"asimd": "NEON", "asimdhp": "FP16_VA", "asimddp": "DOTPROD", "i8mm": "MATMUL_INT8", "sve": "SVE"}
X86_FEATURES = {"avx": "AVX", "avx2": "AVX2", "fma": "FMA", "f16c": "F16C", "avx512f": "AVX512",
                "avx512_vnni": "AVX512_VNNI", "avx512vbmi": "AVX512_VBMI", "avx512_bf16": "AVX512_BF16",
                "avx_vnni": "AVX_VNNI"}
# features whose absence from the build costs real speed on a CPU that has them
SPEED_FEATURES = {"NEON", "DOTPROD", "AVX2"}
ARM_CORES = {"0xd03": "Cortex-A53", "0xd08": "Cortex-A72", "0xd0b": "Cortex-A76", "0xd05": "Cortex-A55",
             "0xd42": "Cortex-A78AE"}


def root_file(settings: Settings, path: str) -> Path:
    """``path`` under the system root (``/proc/meminfo`` -> ``<root>/proc/meminfo``)."""
    return settings.system_root / path.lstrip("/")


def read_root_text(settings: Settings, path: str) -> Optional[str]:
    """A device file's text, or None if it cannot be read."""
    try:
        return root_file(settings, path).read_text(errors="replace")
    except OSError:
        return None


def read_meminfo_mb(settings: Settings) -> dict[str, int]:
    """``/proc/meminfo`` in MB (``MemTotal``, ``MemAvailable``, ``SwapTotal``...); {} if unreadable."""
    values = {}
    for line in (read_root_text(settings, "/proc/meminfo") or "").splitlines():
        key, _, rest = line.partition(":")
        number = rest.split()
        if number and number[0].isdigit():
            values[key.strip()] = int(number[0]) // MB_PER_KB
    return values


def active_profile(settings: Settings) -> tuple[DeviceProfile, str, str]:
    """(profile in use, detected profile name, what it was detected from); detection uses
    the RAM in ``<root>/proc/meminfo`` so that fixtures decide it, not this machine."""
    ram_mb = read_meminfo_mb(settings).get("MemTotal") or None
    detected, reason = detect_profile_name(settings.system_root, ram_mb)
    name = detected if settings.profile == AUTO else settings.profile
    return load_profile(name, settings.profiles_dir), detected, reason


def check_profile(settings: Settings) -> CheckResult:
    """The configured profile exists and matches the device it runs on."""
    try:
        profile, detected, reason = active_profile(settings)
    except AssistantError as exc:
        return CheckResult("profile", FAIL, exc.message)
    details = {"profile": profile.name, "configured": settings.profile, "detected": detected, "reason": reason,
               "ram_budget_mb": profile.ram_budget_mb}
    if settings.profile == AUTO:
        return CheckResult("profile", OK, f"{profile.name} (auto: {reason})", details)
    if profile.name != detected:
        return CheckResult("profile", WARN, f"{profile.name} is configured, but this device looks like "
                                            f"{detected} ({reason})", details)
    return CheckResult("profile", OK, f"{profile.name} (configured; matches {reason})", details)


def check_ram(settings: Settings) -> CheckResult:
    """Enough RAM available now for the profile's budget."""
    mem = read_meminfo_mb(settings)
    if "MemTotal" not in mem:
        return CheckResult("ram", FAIL, f"cannot read {root_file(settings, '/proc/meminfo')}")
    total, available = mem["MemTotal"], mem.get("MemAvailable", mem.get("MemFree", 0))
    details = {"total_mb": total, "available_mb": available}
    try:
        profile = active_profile(settings)[0]
    except AssistantError:
        return CheckResult("ram", OK, f"{total} MB, {available} MB available (no profile to compare)", details)
    details["ram_budget_mb"] = budget = profile.ram_budget_mb
    if available < budget:
        return CheckResult("ram", WARN, f"{available} MB available of {total} MB, less than the {budget} MB "
                                        f"budget of {profile.name}: close other programs or use a smaller profile",
                           details)
    return CheckResult("ram", OK, f"{total} MB, {available} MB available; {profile.name} budget {budget} MB", details)


def check_swap(settings: Settings) -> CheckResult:
    """Some swap on small boards (a spike otherwise gets the server killed), and not much in use."""
    mem = read_meminfo_mb(settings)
    if "SwapTotal" not in mem:
        return CheckResult("swap", FAIL, f"cannot read {root_file(settings, '/proc/meminfo')}")
    total, used = mem["SwapTotal"], mem["SwapTotal"] - mem.get("SwapFree", mem["SwapTotal"])
    details = {"total_mb": total, "used_mb": used}
    if total == 0:
        if mem.get("MemTotal", 0) <= 4096:
            return CheckResult("swap", WARN, f"none, with {mem.get('MemTotal')} MB of RAM: a memory spike gets the "
                                             "server killed; enable swap (dphys-swapfile or zram)", details)
        return CheckResult("swap", OK, "none (enough RAM)", details)
    if used > total / 2:
        return CheckResult("swap", WARN, f"{used} of {total} MB in use: the device is short of RAM", details)
    return CheckResult("swap", OK, f"{total} MB, {used} MB in use", details)


def amx_verdict(cpu_flags: set[str], build: dict[str, bool]) -> tuple[str, str]:
    """(status, explanation) for llama.cpp's AMX path on this CPU: it crashes on Q4_1 and
    is reported to give wrong Q4_0/Q4_1 results, so a build that has it on a CPU that
    would take it is a failure (the engine then turns extra buffers off, at a cost)."""
    if not cpu_has_amx(cpu_flags):
        return OK, "no AMX on this CPU"
    if build_has_amx(build):
        return FAIL, ("AMX: this CPU has AMX tiles and llama.cpp was built with its AMX path (crashes on Q4_1); "
                      "the engine loads without extra buffers as a stopgap: rebuild with 'make install' "
                      "(deploy/build-llama.sh)")
    return OK, "AMX: this CPU has AMX tiles; the build leaves llama.cpp's AMX path out (safe)"


def compare_build(cpu_flags: set[str], is_arm: bool, build: dict[str, bool]) -> tuple[str, str]:
    """(status, explanation) for a llama.cpp build on a CPU: a build feature the CPU lacks
    crashes (illegal instruction); a speed feature the build lacks is slow."""
    build_is_arm = "NEON" in build
    if build_is_arm != is_arm:
        return WARN, (f"llama.cpp was built for {'ARM' if build_is_arm else 'x86'} but cpuinfo describes "
                      f"{'ARM' if is_arm else 'x86'} (fixture or emulation?)")
    table = ARM_FEATURES if is_arm else X86_FEATURES
    unsupported = [name for flag, name in table.items() if build.get(name) and flag not in cpu_flags]
    if unsupported:
        return FAIL, (f"llama.cpp uses {', '.join(unsupported)}, which this CPU lacks (illegal instruction): "
                      "rebuild it for this board (deploy/raspberry-pi/install.sh)")
    unused = [name for flag, name in table.items()
              if name in SPEED_FEATURES and flag in cpu_flags and not build.get(name)]
    if unused:
        hint = "-DGGML_CPU_ARM_ARCH=armv8.2-a+dotprod" if "DOTPROD" in unused else "GGML_NATIVE=ON"
        return WARN, f"the CPU has {', '.join(unused)} but llama.cpp does not use it: rebuild with {hint}"
    used = [name for name in table.values() if build.get(name)]
    return OK, f"llama.cpp uses {', '.join(used) or 'no SIMD features'}"


def check_cpu(settings: Settings) -> CheckResult:
    """NEON/dotprod (ARM) or AVX2 (x86) present, and the llama.cpp build matching the CPU."""
    text = read_root_text(settings, "/proc/cpuinfo")
    if text is None:
        return CheckResult("cpu", FAIL, f"cannot read {root_file(settings, '/proc/cpuinfo')}")
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    cores = sum(1 for line in text.splitlines() if line.startswith("processor"))
    is_arm = "CPU implementer" in fields or "Features" in fields
    flags = set((fields.get("Features") if is_arm else fields.get("flags", "")).split())
    if is_arm:
        name = ARM_CORES.get(fields.get("CPU part", ""), f"ARM part {fields.get('CPU part', '?')}")
        table = ARM_FEATURES
        described = f"{name}, {cores} cores: NEON {_yes(flags, 'asimd')}, dotprod {_yes(flags, 'asimddp')}"
    else:
        name = fields.get("model name", "unknown CPU")
        table = X86_FEATURES
        described = (f"{name}, {cores} cores: AVX2 {_yes(flags, 'avx2')}, FMA {_yes(flags, 'fma')}, "
                     f"AMX {_yes(flags, 'amx_int8')}")
    details = {"cpu": name, "cores": cores, "features": sorted(table[f] for f in flags if f in table)}
    if is_arm and "asimd" not in flags:
        return CheckResult("cpu", FAIL, f"{described}: llama.cpp needs NEON to be usable", details)
    try:
        build = llama_build_features()
    except Exception as exc:  # ImportError, or the shared library failing to load
        return CheckResult("cpu", FAIL, f"{described}; llama-cpp-python does not load: {exc}", details)
    details["llama_build"] = sorted(key for key, on in build.items() if on)
    status, explanation = compare_build(flags, is_arm, build)
    if not is_arm:
        details["amx"] = cpu_has_amx(flags)
        amx_status, amx_explanation = amx_verdict(flags, build)
        if amx_status != OK or details["amx"]:
            explanation += f"; {amx_explanation}"
        status = FAIL if FAIL in (status, amx_status) else status
    return CheckResult("cpu", status, f"{described}; {explanation}", details)


def _yes(flags: set[str], flag: str) -> str:
    return "yes" if flag in flags else "no"


def find_vcgencmd(settings: Settings) -> Optional[str]:
    """The Raspberry Pi firmware tool: on PATH, or under a fixture system root."""
    if settings.system_root != Path("/"):
        for folder in ("usr/bin", "opt/vc/bin"):
            candidate = settings.system_root / folder / "vcgencmd"
            if candidate.is_file():
                return str(candidate)
        return None
    return shutil.which("vcgencmd")


def _vcgencmd(tool: str, *args: str) -> str:
    out = subprocess.run([tool, *args], capture_output=True, text=True, timeout=10)
    if out.returncode:
        raise RuntimeError((out.stderr or out.stdout).strip() or f"exit {out.returncode}")
    return out.stdout.strip()


def decode_throttled(value: int) -> tuple[list[str], list[str]]:
    """(conditions now, conditions since boot) from ``get_throttled``'s bit field."""
    now = [name for bit, name in THROTTLE_BITS.items() if value & (1 << bit)]
    past = [name for bit, name in THROTTLE_BITS.items() if value & (1 << (bit + 16))]
    return now, past


def check_thermal(settings: Settings) -> CheckResult:
    """Temperature and throttling from ``vcgencmd`` on a Pi; else the kernel's thermal zone."""
    tool = find_vcgencmd(settings)
    if tool is None:
        raw = read_root_text(settings, "/sys/class/thermal/thermal_zone0/temp")
        if raw is None or not raw.strip().lstrip("-").isdigit():
            return CheckResult("thermal", OK, "no vcgencmd and no thermal sensor here: not checked")
        temp_c = int(raw) / 1000
        status = WARN if temp_c >= HOT_C else OK
        return CheckResult("thermal", status, f"{temp_c:.1f} °C (no vcgencmd: throttling not checked)",
                           {"temp_c": temp_c})
    try:
        throttled = int(_vcgencmd(tool, "get_throttled").split("=")[-1], 16)
        temp_c = float(re.findall(r"[-\d.]+", _vcgencmd(tool, "measure_temp"))[0])
    except (OSError, RuntimeError, ValueError, IndexError, subprocess.TimeoutExpired) as exc:
        return CheckResult("thermal", WARN, f"vcgencmd failed ({exc}); as a non-root user it needs the 'video' group")
    now, past = decode_throttled(throttled)
    details = {"temp_c": temp_c, "throttled": hex(throttled), "now": now, "since_boot": past}
    if "under-voltage" in now:
        return CheckResult("thermal", FAIL, f"under-voltage now ({temp_c:.1f} °C): use the official power supply "
                                            "(Pi 4: 5.1 V 3 A; Pi 5: 5.1 V 5 A)", details)
    if now:
        return CheckResult("thermal", WARN, f"{', '.join(now)} now at {temp_c:.1f} °C: add cooling", details)
    if past:
        return CheckResult("thermal", WARN, f"{temp_c:.1f} °C; since boot: {', '.join(past)}", details)
    if temp_c >= HOT_C:
        return CheckResult("thermal", WARN, f"{temp_c:.1f} °C: close to throttling, add cooling", details)
    return CheckResult("thermal", OK, f"{temp_c:.1f} °C, never throttled since boot", details)


def check_disk(settings: Settings) -> CheckResult:
    """Free space where the data lives (models, index, adapters)."""
    folder = settings.home
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    free_mb = shutil.disk_usage(folder).free // (1024 * 1024)
    details = {"path": str(settings.home), "free_mb": free_mb}
    if free_mb < 500:
        return CheckResult("disk", FAIL, f"{free_mb} MB free for {settings.home}: indexing and models need more",
                           details)
    if free_mb < 2000:
        return CheckResult("disk", WARN, f"{free_mb} MB free for {settings.home}", details)
    return CheckResult("disk", OK, f"{free_mb} MB free for {settings.home}", details)
