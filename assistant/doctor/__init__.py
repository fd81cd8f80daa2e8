"""``assistant doctor``: the checks a user would otherwise ask about, each answering ok,
warn or fail with one line of explanation.

Checks read the device through ``settings.system_root`` (``<root>/proc/meminfo``,
``<root>/proc/cpuinfo``, ...), so tests point them at fixture files. A check never
raises: an unexpected error becomes its own ``fail``.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Callable

from assistant.settings import Settings

OK, WARN, FAIL = "ok", "warn", "fail"


@dataclass(frozen=True)
class CheckResult:
    """One check's verdict: ``status`` is ok, warn or fail; ``summary`` one line."""

    name: str
    status: str
    summary: str
    details: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        """JSON-friendly."""
        return asdict(self)


Check = Callable[[Settings], CheckResult]


def registry() -> dict[str, Check]:
    """Every check by name, in the order they are reported."""
    from assistant.doctor import artifacts, system

    return {
        "profile": system.check_profile,
        "ram": system.check_ram,
        "swap": system.check_swap,
        "cpu": system.check_cpu,
        "thermal": system.check_thermal,
        "disk": system.check_disk,
        "model": artifacts.check_model,
        "index": artifacts.check_index,
        "adapters": artifacts.check_adapters,
        "port": artifacts.check_port,
    }


def run_checks(settings: Settings, names: list[str] | None = None) -> list[CheckResult]:
    """Run the named checks (default: all); an exception inside one is reported as a fail."""
    checks = registry()
    results = []
    for name in names or list(checks):
        try:
            result = checks[name](settings)
        except Exception as exc:  # a doctor must report, not crash
            result = CheckResult(name, FAIL, f"the check itself failed: {type(exc).__name__}: {exc}")
        results.append(result)
    return results
