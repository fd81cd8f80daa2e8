"""Difficulty estimator on the router evaluation set (issue 14, step 3): its confusion
matrix, accuracy with a 95% interval, how often a ``general`` question is routed to the
notes, and the estimator's own time (beyond the search the request already runs).

Every question goes through ``Assistant.route`` (the product's path, no generation) on a
home that has indexed ``benchmarks/router/eval/notes`` and has no adapter and no
calibration: the levels come from the estimator alone, and "routed to the notes" means
the default plan retrieves.

    python benchmarks/router/bench_estimator.py [--split dev|test|all] [--profile NAME]
                                                [--home DIR] [--out FILE] [--show-errors]

Tune on dev (``--show-errors`` lists dev's misrouted questions); score test once per
reported change. ``--show-errors`` refuses the test split, so its questions are not read
one by one while the estimator is being worked on.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from assistant.router.difficulty import LEVELS  # noqa: E402
from assistant.study.paired import mean_ci  # noqa: E402
from benchmarks.router.eval_set import indexed_settings, questions  # noqa: E402

GENERAL_TO_NOTES_GOAL = 0.10
ACCURACY_GOAL = 0.85


def open_assistant(home: Path, profile: str):
    """An assistant on ``home`` with the evaluation notes indexed (indexing skipped when done)."""
    from assistant.orchestrator import Assistant

    return Assistant.load(indexed_settings(home, profile, n_ctx=1024))


def measure(assistant, rows: list[dict]) -> list[dict]:
    """One record per question: true level, estimated level, whether the plan retrieves,
    the estimator's milliseconds and its reasons."""
    from assistant.models.chat_format import ChatMessage
    from assistant.orchestrator import AskRequest

    out = []
    for row in rows:
        routed = assistant.route(AskRequest(messages=[ChatMessage("user", row["question"])]))
        out.append({"id": row["id"], "split": row["split"], "level": row["level"], "kind": row["kind"],
                    "question": row["question"], "estimated": routed.plan.difficulty,
                    "retrieves": routed.plan.retrieves, "plan": f"{routed.plan.strategy} k={routed.plan.k}",
                    "estimate_ms": routed.estimate_s * 1000,
                    "reasons": routed.difficulty.reasons})
    return out


def summarise(records: list[dict]) -> dict:
    """Accuracy, confusion matrix, general-to-notes rate and estimator time of ``records``."""
    hits = [int(r["level"] == r["estimated"]) for r in records]
    general = [int(r["retrieves"]) for r in records if r["level"] == "general"]
    confusion = {level: dict(Counter(r["estimated"] for r in records if r["level"] == level)) for level in LEVELS}
    times = sorted(r["estimate_ms"] for r in records)
    per_level = {}
    for level in LEVELS:
        level_hits = [int(r["level"] == r["estimated"]) for r in records if r["level"] == level]
        per_level[level] = {"n": len(level_hits), "accuracy": sum(level_hits) / len(level_hits) if level_hits else None}
    plans = {level: dict(Counter(r["plan"] for r in records if r["level"] == level)) for level in LEVELS}
    return {"n": len(records), "accuracy": sum(hits) / len(hits), "accuracy_ci95": mean_ci(hits)[1:],
            "per_level": per_level, "confusion": confusion, "plans": plans,
            "general_to_notes": sum(general) / len(general) if general else None,
            "general_to_notes_ci95": mean_ci(general)[1:] if general else (float("nan"), float("nan")),
            "general_n": len(general),
            "estimate_ms_p50": statistics.median(times),
            "estimate_ms_p95": times[min(len(times) - 1, int(0.95 * len(times)))]}


def render(split: str, summary: dict) -> str:
    """The split's confusion matrix and figures as markdown."""
    lo, hi = summary["accuracy_ci95"]
    glo, ghi = summary["general_to_notes_ci95"]
    lines = [f"### {split} split: {summary['n']} questions", "",
             "| true \\ estimated | " + " | ".join(LEVELS) + " | accuracy |",
             "|---|" + "---|" * (len(LEVELS) + 1)]
    for level in LEVELS:
        row = summary["confusion"][level]
        acc = summary["per_level"][level]["accuracy"]
        accuracy = f"{acc:.2f}" if acc is not None else "n/a: no questions"
        lines.append(f"| {level} | " + " | ".join(str(row.get(e, 0)) for e in LEVELS) + f" | {accuracy} |")
    met = "met" if lo >= ACCURACY_GOAL else ("missed" if hi < ACCURACY_GOAL else "not shown (interval spans it)")
    gmet = "met" if summary["general_to_notes"] <= GENERAL_TO_NOTES_GOAL else "missed"
    lines += ["", f"- accuracy {summary['accuracy']:.3f} (95% CI {lo:.3f}-{hi:.3f}, n={summary['n']}); "
                  f"goal >= {ACCURACY_GOAL}: point estimate {'met' if summary['accuracy'] >= ACCURACY_GOAL else 'missed'}, "
                  f"interval: {met}",
              f"- general questions routed to the notes: {summary['general_to_notes']:.3f} "
              f"(95% CI {glo:.3f}-{ghi:.3f}, n={summary['general_n']}); goal <= {GENERAL_TO_NOTES_GOAL}: {gmet}",
              f"- estimator time beyond the search: p50 {summary['estimate_ms_p50']:.3f} ms, "
              f"p95 {summary['estimate_ms_p95']:.3f} ms (goal p95 < 5 ms)",
              "- plans by true level (no adapter, no calibration): " + "; ".join(
                  f"{level}: " + ", ".join(f"{plan} x{n}" for plan, n in sorted(summary["plans"][level].items()))
                  for level in LEVELS)]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the estimator over a split and print (and optionally save) its figures."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--split", choices=("dev", "test", "all"), default="dev")
    parser.add_argument("--profile", default="laptop-16gb")
    parser.add_argument("--home", type=Path, default=None, help="reuse this home's index (default: a temporary one)")
    parser.add_argument("--out", type=Path, default=None, help="write the records and summary as JSON here")
    parser.add_argument("--show-errors", action="store_true", help="list misrouted dev questions with reasons")
    args = parser.parse_args(argv)
    if args.show_errors and args.split != "dev":
        parser.error("--show-errors is for the dev split only (tune on dev, score test once)")
    with tempfile.TemporaryDirectory() as scratch:
        assistant = open_assistant(args.home or Path(scratch), args.profile)
        try:
            records = measure(assistant, questions(args.split))
        finally:
            assistant.knowledge.close()
    splits = ("dev", "test") if args.split == "all" else (args.split,)
    result = {"profile": args.profile, "splits": {}}
    for split in splits:
        summary = summarise([r for r in records if r["split"] == split])
        result["splits"][split] = summary
        print(render(split, summary), end="\n\n")
    if args.show_errors:
        for r in records:
            if r["level"] != r["estimated"]:
                print(f"{r['id']:9} {r['level']:>8} -> {r['estimated']:8} {r['question']}\n"
                      f"          {'; '.join(r['reasons'])}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        result["records"] = records if args.split == "dev" else [
            {k: r[k] for k in ("id", "split", "level", "estimated", "retrieves", "plan")} for r in records]
        args.out.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
