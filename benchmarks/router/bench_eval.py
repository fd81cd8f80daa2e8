"""``auto`` against every fixed strategy on the router evaluation set (issue 14, steps 2
and 5): the same questions, the same scorer (``assistant.study.scoring``), the same
passage budget, paired per question.

Each question is asked through ``Assistant.answer`` with ``auto`` first; every fixed
strategy that can run (base, rag, and with an adapter: adapter, rag+adapter) is then
asked with the passage budget ``auto`` chose for that question (the profile's when
``auto`` did not retrieve). Where that budget differs from the profile's, always-``rag``
is also run with the profile's budget, so the table shows both. Greedy decoding (seed 0);
48 generated tokens for short answers, 128 for summaries and comparisons.

Per level and overall: accuracy and mean latency of each strategy; ``auto`` minus each
fixed strategy with a 95% paired-bootstrap interval; McNemar's exact test on "fully
right", Holm-corrected across the four levels; the goal lines of issue 14.

    python benchmarks/router/bench_eval.py [--split dev|test] [--per-level N] [--profile NAME]
        [--adapter-budget S] [--home DIR] [--out FILE] [--quick]
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from assistant.router.difficulty import LEVELS  # noqa: E402
from assistant.study.paired import holm, mcnemar_exact, mean_difference_ci  # noqa: E402
from assistant.study.scoring import answer_tokens, score_answer  # noqa: E402
from benchmarks.router.eval_set import indexed_settings, questions  # noqa: E402

FIXED = ("base", "rag", "adapter", "rag+adapter")
RAG_PROFILE_K = "rag@profile-k"  # always-rag with the profile's passage budget
NON_INFERIORITY = -0.05  # auto minus the best fixed strategy: lower 95% bound at least this


def prepare(home: Path, profile: str, adapter_budget: float):
    """Index the evaluation notes, train an adapter if asked (each once per home), load the assistant."""
    from assistant.learn.registry import AdapterRegistry
    from assistant.orchestrator import Assistant

    settings = indexed_settings(home, profile, n_ctx=2048)
    if adapter_budget > 0 and AdapterRegistry(settings).active_path() is None:
        from assistant.learn.pipeline import learn
        from assistant.profiles import load_profile

        learn(settings, load_profile("laptop-16gb"), budget_s=adapter_budget)  # trained where training is allowed
    return Assistant.load(settings)


def ask(assistant, row: dict, strategy: str, k: int | None = None) -> dict:
    """One answer: its score, wall seconds and plan."""
    from assistant.models.chat_format import ChatMessage
    from assistant.models.generation import SamplingParams
    from assistant.orchestrator import AskRequest

    request = AskRequest(messages=[ChatMessage("user", row["question"])], strategy=strategy, k=k,
                         sampling=SamplingParams(max_tokens=answer_tokens(row["answers"]), temperature=0.0, seed=0))
    started = time.perf_counter()
    answer = assistant.answer(request)
    seconds = time.perf_counter() - started
    return {"score": score_answer(answer.text, row["answers"], row["key_facts"]), "seconds": seconds,
            "strategy": str(answer.plan.strategy), "difficulty": answer.plan.difficulty, "k": answer.plan.k,
            "text": answer.text}


def run(assistant, rows: list[dict], progress: bool = True) -> list[dict]:
    """Every question under auto and each fixed strategy that can run here."""
    has_adapter = assistant.resources(assistant.pool.get()).adapter_name is not None
    fixed = [s for s in FIXED if has_adapter or "adapter" not in s]
    profile_k = assistant.profile.rag_passages
    records = []
    for number, row in enumerate(rows, start=1):
        auto = ask(assistant, row, "auto")
        k = auto["k"] or profile_k
        results = {"auto": auto}
        for strategy in fixed:
            results[strategy] = ask(assistant, row, strategy, k if strategy != "base" and strategy != "adapter" else None)
        results[RAG_PROFILE_K] = results["rag"] if k == profile_k else ask(assistant, row, "rag", profile_k)
        records.append({"id": row["id"], "level": row["level"], "kind": row["kind"], "results": results})
        if progress:
            print(f"\r{number}/{len(rows)} questions", end="", file=sys.stderr, flush=True)
    if progress:
        print(file=sys.stderr)
    return records


def compare(records: list[dict]) -> dict:
    """Per level and overall: accuracy, latency, and auto against each fixed strategy."""
    strategies = list(records[0]["results"]) if records else []
    groups = {level: [r for r in records if r["level"] == level] for level in LEVELS}
    groups["all"] = records
    out = {}
    for name, group in groups.items():
        if not group:
            continue
        scores = {s: [r["results"][s]["score"] for r in group] for s in strategies}
        cell = {"n": len(group),
                "accuracy": {s: statistics.fmean(v) for s, v in scores.items()},
                "latency_s": {s: statistics.fmean(r["results"][s]["seconds"] for r in group) for s in strategies},
                "auto_chose": {}, "vs": {}}
        for r in group:
            chose = f"{r['results']['auto']['strategy']} ({r['results']['auto']['difficulty']})"
            cell["auto_chose"][chose] = cell["auto_chose"].get(chose, 0) + 1
        for s in strategies:
            if s == "auto":
                continue
            mean, low, high = mean_difference_ci(scores["auto"], scores[s])
            only_auto, only_fixed, p = mcnemar_exact(scores["auto"], scores[s])
            cell["vs"][s] = {"diff": mean, "ci95": [low, high], "only_auto": only_auto, "only_fixed": only_fixed,
                             "p": p}
        out[name] = cell
    for s in (s for s in strategies if s != "auto"):  # Holm across the four levels, per fixed strategy
        levels = [level for level in LEVELS if level in out]
        for level, adjusted in zip(levels, holm([out[level]["vs"][s]["p"] for level in levels])):
            out[level]["vs"][s]["p_holm"] = adjusted
    return out


def goals(table: dict) -> list[str]:
    """Issue 14's goal lines, each met or missed with its figures."""
    lines = []
    for level in (level for level in LEVELS if level in table):
        cell = table[level]
        fixed = {s: a for s, a in cell["accuracy"].items() if s != "auto"}
        best = max(fixed, key=fixed.get)
        low = cell["vs"][best]["ci95"][0]
        lines.append(f"- {level}: auto {cell['accuracy']['auto']:.2f} vs best fixed {best} {fixed[best]:.2f}; "
                     f"lower 95% bound of the difference {low:+.2f} (goal >= {NON_INFERIORITY:+.2f}): "
                     f"{'met' if low >= NON_INFERIORITY else 'missed'}")
    if "all" in table:
        cell = table["all"]
        vs = cell["vs"]["rag"]
        faster = cell["latency_s"]["auto"] < cell["latency_s"]["rag"]
        lines.append(f"- overall: auto {cell['accuracy']['auto']:.3f} vs always-rag {cell['accuracy']['rag']:.3f}, "
                     f"difference {vs['diff']:+.3f} (95% CI {vs['ci95'][0]:+.3f} to {vs['ci95'][1]:+.3f}): more "
                     f"accurate {'shown' if vs['ci95'][0] > 0 else 'not shown'}; mean latency "
                     f"{cell['latency_s']['auto']:.2f} s vs {cell['latency_s']['rag']:.2f} s: "
                     f"{'lower' if faster else 'not lower'}")
    return lines


def render(table: dict) -> str:
    """Markdown: accuracy / latency per level and strategy, then auto minus each fixed one."""
    strategies = list(next(iter(table.values()))["accuracy"])
    lines = ["| level | n | " + " | ".join(strategies) + " | auto chose |", "|---|---|" + "---|" * (len(strategies) + 1)]
    for name, cell in table.items():
        chose = ", ".join(f"{k} x{v}" for k, v in sorted(cell["auto_chose"].items()))
        lines.append(f"| {name} | {cell['n']} | " + " | ".join(
            f"{cell['accuracy'][s]:.2f} / {cell['latency_s'][s]:.2f} s" for s in strategies) + f" | {chose} |")
    lines += ["", "auto minus fixed: mean difference [95% CI], McNemar (only auto right / only fixed right, "
                  "p Holm-adjusted across levels)", "",
              "| level | " + " | ".join(s for s in strategies if s != "auto") + " |",
              "|---|" + "---|" * (len(strategies) - 1)]
    for name, cell in table.items():
        parts = []
        for s in (s for s in strategies if s != "auto"):
            vs = cell["vs"][s]
            p = f", p={vs['p_holm']:.3f}" if "p_holm" in vs else f", p={vs['p']:.3f}"
            parts.append(f"{vs['diff']:+.2f} [{vs['ci95'][0]:+.2f}, {vs['ci95'][1]:+.2f}] "
                         f"({vs['only_auto']}/{vs['only_fixed']}{p})")
        lines.append(f"| {name} | " + " | ".join(parts) + " |")
    return "\n".join(lines + [""] + goals(table))


def main(argv: list[str] | None = None) -> int:
    """Run the comparison and print (and optionally save) its tables."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--split", choices=("dev", "test"), default="dev")
    parser.add_argument("--per-level", type=int, default=None, help="first N questions of each level (default: all)")
    parser.add_argument("--profile", default="laptop-16gb")
    parser.add_argument("--adapter-budget", type=float, default=0.0,
                        help="train an adapter for this many seconds first (0: no adapter strategies)")
    parser.add_argument("--home", type=Path, default=None, help="reuse this home (index, adapter)")
    parser.add_argument("--out", type=Path, default=None, help="write records and tables as JSON here")
    parser.add_argument("--quick", action="store_true", help="1 dev question per level, no adapter (under a minute)")
    args = parser.parse_args(argv)
    if args.quick:  # a smoke run of every code path: its figures mean nothing at n = 4
        args.split, args.per_level, args.adapter_budget = "dev", 1, 0.0
    rows = questions(args.split, args.per_level)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as scratch:
        assistant = prepare(args.home or Path(scratch), args.profile, args.adapter_budget)
        try:
            records = run(assistant, rows)
        finally:
            assistant.knowledge.close()
    table = compare(records)
    print(f"## {args.split} split, {len(rows)} questions, profile {args.profile} "
          f"({time.perf_counter() - started:.0f} s)\n")
    print(render(table))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"split": args.split, "profile": args.profile, "per_level": args.per_level,
                                        "adapter_budget": args.adapter_budget, "table": table,
                                        "records": records}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
