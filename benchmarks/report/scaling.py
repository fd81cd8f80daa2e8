"""Section: how each cost grows with its work, from the other sections' JSON (nothing reruns):
log-log fits, cost = a * work^b, with the exponent b."""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional

from benchmarks.report.common import figure, load, loglog_fit, save, table

TITLE = "Scaling"
Series = tuple[str, str, list[float], list[float]]  # (cost, work, xs, ys)


def commands(quick: bool, results: Path) -> list[list[str]]:
    """Nothing of its own: the prompt-processing, retrieval and CIM sections measured it."""
    return []


def _prefill(results: Path) -> Optional[Series]:
    models = load(results / "prefill.json").get("models") or {}
    rows = next(iter(models.values()), {}).get("scaling") or []
    points = [(r["prompt_tokens"], r["seconds"]) for r in rows if r.get("seconds")]
    return ("prefill time (s), default model", "prompt tokens", *map(list, zip(*points))) if len(points) >= 2 else None


def _query(results: Path) -> Optional[Series]:
    rows = (load(results / "knowledge_index.json").get("sizes") or {}).values()
    points = [(r["chunks"], r["p50_ms"]) for r in rows if r.get("p50_ms")]
    return ("search p50 (ms)", "index chunks", *map(list, zip(*points))) if len(points) >= 2 else None


def _personalize(results: Path) -> Optional[Series]:
    rows = load(results / "knowledge_index.json").get("personalize") or []
    points = [(r["files"], r["seconds"]) for r in rows if r.get("seconds")]
    return ("`personalize` time (s)", "notes in the folder", *map(list, zip(*points))) if len(points) >= 2 else None


def _chips(results: Path) -> Optional[Series]:
    rows = (load(results / "cim_chips_per_second.json").get("sweep") or {}).get("cim_backend") or []
    points = [(r["chips"], r["median_seconds"]) for r in rows if r.get("median_seconds")]
    return ("CIM evaluation time (s), cim_backend", "chips", *map(list, zip(*points))) if len(points) >= 2 else None


EXTRACTORS: dict[str, Callable[[Path], Optional[Series]]] = {
    "prompt length": _prefill, "index size": _query, "notes folder size": _personalize, "number of chips": _chips}


def render(results: Path, plots: Path) -> str:
    """A table of fitted exponents and one log-log panel per cost."""
    found = {name: extract(results) for name, extract in EXTRACTORS.items()}
    rows, series = [], [(name, s) for name, s in found.items() if s]
    for name, s in found.items():
        if s is None:
            rows.append([name, "n/a: not measured in this run", "n/a: not measured", "n/a: not measured"])
            continue
        cost, work, xs, ys = s
        _, exponent = loglog_fit(xs, ys)
        rows.append([f"{cost} vs {work}", f"{min(xs):g}-{max(xs):g}", len(xs), exponent])
    parts = ["Exponent 1 is linear growth; below 1, fixed costs still dominate at the small end.", "",
             table(["cost vs work", "range of work", "points", "fitted exponent"], rows)]
    if series:
        import matplotlib.pyplot as plt

        fig, _ = figure()
        plt.close(fig)
        fig, axes = plt.subplots(1, len(series), figsize=(3.2 * len(series), 3.2), dpi=100, squeeze=False)
        for ax, (name, (cost, work, xs, ys)) in zip(axes[0], series):
            a, b = loglog_fit(xs, ys)
            ax.loglog(xs, ys, "o")
            span = sorted(xs)
            ax.loglog(span, [a * x ** b for x in span], "--", label=f"exponent {b:.2f}")
            ax.set_xlabel(work, fontsize=8)
            ax.set_title(cost, fontsize=8)
            ax.legend(fontsize=7)
        parts += ["", save(fig, plots, "scaling")]
    return "\n".join(parts)
