"""Section: the hours-long studies, aggregated from their committed JSON (never rerun here)."""
from __future__ import annotations

from pathlib import Path

from benchmarks.report.common import load

TITLE = "Long runs (aggregated, not rerun)"
REPO = Path(__file__).resolve().parents[2]
# Where each study commits its full run (see its issue); the report only reads them.
STUDIES = {
    "TSB reproduction (`assistant cim reproduce`)": REPO / "benchmarks" / "cim" / "full-run" / "results.json",
    "Router trade-off study (`assistant bench study`)": REPO / "benchmarks" / "router" / "full-run" / "results.json",
}


def commands(quick: bool, results: Path) -> list[list[str]]:
    """Nothing runs: these studies take hours; their committed results are read."""
    return []


def render(results: Path, plots: Path) -> str:
    """One line per study: where its committed results are, or that none are committed yet."""
    lines = []
    for name, path in STUDIES.items():
        data = load(path)
        where = path.relative_to(REPO)
        if not data:
            lines.append(f"- {name}: n/a: no full run committed yet at `{where}`.")
        else:
            lines.append(f"- {name}: committed full run at `{where}` ({len(data)} top-level entries); "
                         f"its own report sits beside it.")
    return "\n".join(lines)
