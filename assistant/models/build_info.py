"""What the llama.cpp build in use was compiled with, against what this CPU has.

llama.cpp's AMX path (compiled in by a native build on Intel CPUs with AMX tiles) segfaults
on Q4_1 and is reported to give wrong results for Q4_0/Q4_1. ``deploy/build-llama.sh``
compiles it out; ``amx_guard_needed`` is the safety net for a llama-cpp-python installed
some other way: the engine then loads models without llama.cpp's extra buffer types, which
is how the AMX path is reached."""
from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

# /proc/cpuinfo flags (the kernel's spelling) of the AMX units llama.cpp's path uses
AMX_CPU_FLAGS = frozenset({"amx_int8", "amx_tile"})
# the feature llama.cpp's system info reports when its AMX path is compiled in
AMX_BUILD_FEATURE = "AMX_INT8"


def parse_system_info(text: str) -> dict[str, bool]:
    """``"CPU : NEON = 1 | DOTPROD = 1 | ..."`` -> ``{"NEON": True, "DOTPROD": True, ...}``."""
    return {key: value == "1" for key, value in re.findall(r"([A-Z0-9_]+) = (\d)", text)}


@lru_cache(maxsize=1)
def system_info_text() -> str:
    """``llama_print_system_info()`` of the llama-cpp-python in use (loads its library)."""
    import llama_cpp

    text = llama_cpp.llama_print_system_info()
    return text.decode() if isinstance(text, bytes) else str(text)


def llama_build_features() -> dict[str, bool]:
    """CPU features llama.cpp was compiled with."""
    return parse_system_info(system_info_text())


def cpu_flags(system_root: Path = Path("/")) -> set[str]:
    """The CPU's feature flags from ``<system_root>/proc/cpuinfo`` (x86 ``flags`` or ARM
    ``Features``); empty when unreadable."""
    try:
        text = (system_root / "proc" / "cpuinfo").read_text(errors="replace")
    except OSError:
        return set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return set(value.split())
    return set()


def cpu_has_amx(flags: set[str]) -> bool:
    """The CPU has the AMX tiles llama.cpp's AMX path would use."""
    return bool(flags & AMX_CPU_FLAGS)


def build_has_amx(build: dict[str, bool]) -> bool:
    """llama.cpp was compiled with its AMX path."""
    return bool(build.get(AMX_BUILD_FEATURE))


def amx_guard_needed(flags: set[str], build: dict[str, bool]) -> bool:
    """The AMX path is compiled in and this CPU would take it: load without extra buffers."""
    return cpu_has_amx(flags) and build_has_amx(build)
