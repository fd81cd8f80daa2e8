"""Shared by the report sections: statistics, tables, plots and machine facts."""
from __future__ import annotations

import json
import math
import platform
import random
import statistics
from pathlib import Path
from typing import Callable, Sequence


def load(path: Path) -> dict:
    """A benchmark's JSON, or {} when the run did not write it (the section says so)."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def write_json(path: Path | None, data: dict) -> None:
    """A benchmark's ``--out``: write ``data`` there as JSON (folders made) and say so; None: nothing."""
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n")
    print(f"wrote {path}")


def bootstrap_ci(values: Sequence[float], stat: Callable[[Sequence[float]], float] = statistics.median,
                 samples: int = 2000, seed: int = 0, level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of ``stat`` over ``values`` (resampled with replacement)."""
    rng = random.Random(seed)
    values = list(values)
    if len(values) < 2:
        return (values[0], values[0]) if values else (math.nan, math.nan)
    draws = sorted(stat([rng.choice(values) for _ in values]) for _ in range(samples))
    tail = (1 - level) / 2
    return draws[int(tail * samples)], draws[min(samples - 1, int((1 - tail) * samples))]


def loglog_fit(xs: Sequence[float], ys: Sequence[float]) -> tuple[float, float]:
    """Least-squares fit of log y = log a + b log x: returns (a, b); b is the scaling exponent."""
    lx = [math.log(x) for x in xs]
    ly = [math.log(y) for y in ys]
    mx, my = statistics.fmean(lx), statistics.fmean(ly)
    sxx = sum((x - mx) ** 2 for x in lx)
    b = sum((x - mx) * (y - my) for x, y in zip(lx, ly)) / sxx if sxx else math.nan
    return math.exp(my - b * mx), b


def table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A markdown table; floats are written with 3 significant digits (or as given if str)."""
    def cell(value: object) -> str:
        if isinstance(value, float):
            return "n/a" if math.isnan(value) else f"{value:.3g}" if abs(value) < 1000 else f"{value:,.0f}"
        return str(value)

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def load_note(averages: Sequence[float], cores: int) -> str:
    """The 1-minute load averages a benchmark recorded, said for what they are: they count the
    benchmark's own threads and, for a minute or two, the section that ran before it, so a
    high one is not by itself a sign of other jobs on the machine."""
    shown = "-".join(f"{a:.1f}" for a in sorted({round(a, 1) for a in averages if not math.isnan(a)})) or "not recorded"
    return (f"1-minute load average {shown} on {cores} cores (it counts this benchmark's own threads and the "
            "tail of the section before it)")


def verdict(met: bool, goal: str, why_missed: str = "") -> str:
    """One line saying whether a goal was met, and why not where it was missed."""
    return f"**Goal {'met' if met else 'missed'}**: {goal}." + ("" if met or not why_missed else f" {why_missed}")


def figure():
    """A fresh matplotlib figure and axes on the non-interactive backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=(6, 4), dpi=100)


def save(fig, plots: Path, name: str) -> str:
    """Write the figure as plots/name.png and return the markdown that shows it."""
    import matplotlib.pyplot as plt

    plots.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(plots / f"{name}.png")
    plt.close(fig)
    return f"![{name}]({plots.name}/{name}.png)"


def machine() -> dict:
    """CPU model, cores and memory: absolute numbers carry them."""
    import os

    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    flags = set()
    try:
        flags = set(next(l for l in Path("/proc/cpuinfo").read_text().splitlines() if l.startswith("flags")).split())
    except (OSError, StopIteration):
        pass
    import psutil

    return {"cpu": model, "cores": os.cpu_count(), "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
            "simd": [f for f in ("avx2", "avx512f", "avx512_vnni", "amx_tile", "asimd", "sve") if f in flags],
            "python": platform.python_version()}


def finish(fig, ax, plots: Path, name: str, xlabel: str, ylabel: str, title: str) -> str:
    """Label a log-log panel, add its legend and grid, save it; the markdown that shows it."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend()
    ax.grid(True, which="both", alpha=0.3)
    return save(fig, plots, name)
