"""The study's outputs under ``$ASSISTANT_HOME/reports/``: ``study.csv``, ``study.md`` (the
table and what it says about each guideline) and PNG plots (matplotlib, Agg backend)."""
from __future__ import annotations

import csv
import math
from collections import defaultdict
from pathlib import Path
from statistics import mean
from typing import Sequence

from assistant.study.study import StudyGrid, StudyRow, rows_as_dicts


def _ok(rows: Sequence[StudyRow]) -> list[StudyRow]:
    return [r for r in rows if r.status == "ok" and r.n and not math.isnan(r.accuracy)]


def _mean(values) -> float:
    values = [v for v in values if not math.isnan(v)]
    return mean(values) if values else float("nan")


def findings(rows: Sequence[StudyRow]) -> list[str]:
    """One line per guideline, computed from the rows (no claim without a number)."""
    ok, lines = _ok(rows), []
    for level in ("easy", "moderate", "hard"):
        by_method = defaultdict(list)
        for r in ok:
            if r.difficulty == level:
                by_method[r.method].append(r.accuracy)
        if by_method:
            ranked = sorted(by_method.items(), key=lambda kv: -_mean(kv[1]))
            lines.append(f"difficulty {level}: best method {ranked[0][0]} (mean accuracy "
                         + ", ".join(f"{m} {_mean(v):.2f}" for m, v in ranked) + ")")
    trained = [r for r in ok if "adapter" in r.method]
    budgets = defaultdict(list)
    for r in trained:
        budgets[r.budget].append(r)
    if len(budgets) > 1:
        lines.append("training budget: " + ", ".join(
            f"{b} mean accuracy {_mean(r.accuracy for r in rs):.2f}, best val loss "
            f"{_mean(r.val_loss for r in rs):.3f}, steps {_mean(r.steps for r in rs):.0f}" for b, rs in budgets.items()))
    for pct in sorted({r.data_pct for r in trained}):
        by_comp = defaultdict(list)
        for r in trained:
            if r.data_pct == pct:
                by_comp[r.compression].append(r)
        if len(by_comp) > 1:
            lines.append(f"compression at {pct}% data (adapter methods): " + ", ".join(
                f"{c} accuracy {_mean(r.accuracy for r in rs):.2f}, val loss {_mean(r.val_loss for r in rs):.3f} "
                f"(from {_mean(r.initial_val_loss for r in rs):.3f})" for c, rs in sorted(by_comp.items())))
    latency = defaultdict(list)
    for r in ok:
        latency[r.method].append(r.mean_latency_s)
    if latency:
        lines.append("latency per answer: " + ", ".join(f"{m} {_mean(v):.2f} s" for m, v in latency.items()))
    failed = sorted({f"{r.model}/{r.compression}: {r.status}" for r in rows if r.status != "ok"})
    lines += [f"not measured: {f}" for f in failed]
    return lines


def markdown(rows: Sequence[StudyRow], grid: StudyGrid, device: str, seconds: float) -> str:
    """The study as a markdown document."""
    header = ["model", "compression", "quant", "method", "data %", "budget", "difficulty", "n", "accuracy",
              "latency s", "train s", "val loss", "status"]
    lines = ["# Trade-off study on this device", "", f"Device: {device}. Grid: {grid.describe()}. "
             f"Wall time: {seconds:.0f} s.", "", "## Findings", ""]
    lines += [f"- {line}" for line in findings(rows)]
    lines += ["", "## Table", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in rows:
        values = [r.model, r.compression, r.quantization, r.method, str(r.data_pct), r.budget, r.difficulty, str(r.n),
                  f"{r.accuracy:.2f}", f"{r.mean_latency_s:.2f}", f"{r.train_s:.0f}" if r.train_s else "",
                  "" if math.isnan(r.val_loss) else f"{r.val_loss:.3f}", r.status]
        lines.append("| " + " | ".join(values) + " |")
    return "\n".join(lines) + "\n"


def plots(rows: Sequence[StudyRow], folder: Path) -> list[Path]:
    """Accuracy by method per difficulty; adapter accuracy by data amount per compression;
    short vs long budget."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok, written = _ok(rows), []
    levels = [l for l in ("easy", "moderate", "hard") if any(r.difficulty == l for r in ok)]
    methods = [m for m in ("base", "rag", "adapter", "rag+adapter") if any(r.method == m for r in ok)]

    fig, ax = plt.subplots(figsize=(7, 4))
    width = 0.8 / max(len(methods), 1)
    for i, method in enumerate(methods):
        ax.bar([x + i * width for x in range(len(levels))],
               [_mean(r.accuracy for r in ok if r.method == method and r.difficulty == l) for l in levels],
               width, label=method)
    ax.set_xticks([x + width * (len(methods) - 1) / 2 for x in range(len(levels))], levels)
    ax.set_ylabel("accuracy"), ax.set_title("Accuracy by learning method and difficulty"), ax.legend()
    written.append(_save(fig, folder / "study_method_by_difficulty.png", plt))

    fig, ax = plt.subplots(figsize=(7, 4))
    trained = [r for r in ok if "adapter" in r.method]
    for key in sorted({(r.model, r.compression) for r in trained}):
        pcts = sorted({r.data_pct for r in trained if (r.model, r.compression) == key})
        ax.plot(pcts, [_mean(r.accuracy for r in trained if (r.model, r.compression) == key and r.data_pct == p)
                       for p in pcts], marker="o", label=f"{key[0]} {key[1]}")
    ax.set_xlabel("data amount (%)"), ax.set_ylabel("accuracy (adapter methods)")
    ax.set_title("Adapter accuracy by data amount and compression"), ax.legend(fontsize=7)
    written.append(_save(fig, folder / "study_data_compression.png", plt))

    fig, ax = plt.subplots(figsize=(7, 4))
    budgets = sorted({r.budget for r in trained}, key=lambda b: _mean(r.budget_s for r in trained if r.budget == b))
    ax.bar(budgets, [_mean(r.accuracy for r in trained if r.budget == b) for b in budgets], label="accuracy")
    ax2 = ax.twinx()
    ax2.plot(budgets, [_mean(r.val_loss for r in trained if r.budget == b) for b in budgets], "k-o", label="val loss")
    ax.set_ylabel("accuracy"), ax2.set_ylabel("best validation loss"), ax.set_title("Training budget")
    written.append(_save(fig, folder / "study_budget.png", plt))
    return written


def _save(fig, path: Path, plt) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def write_reports(rows: Sequence[StudyRow], grid: StudyGrid, folder: Path, device: str,
                  seconds: float) -> dict[str, Path]:
    """study.csv, study.md and the plots in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    csv_path = folder / "study.csv"
    data = rows_as_dicts(rows)
    with csv_path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(data[0]) if data else ["model"])
        writer.writeheader()
        writer.writerows(data)
    md_path = folder / "study.md"
    md_path.write_text(markdown(rows, grid, device, seconds))
    return {"csv": csv_path, "markdown": md_path, **{p.stem: p for p in plots(rows, folder)}}
