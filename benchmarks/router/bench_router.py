"""Router benchmark: accuracy and latency of ``auto`` against always-base, always-rag,
always-adapter and always-rag+adapter, per difficulty level, on an eval notes set.

Moderate items are the knowledge eval's fact questions; general, easy and hard items are
this folder's ``questions.jsonl``. The home is indexed, given a small adapter and
calibrated (probes built from the notes, never the eval questions) before measuring.

    python benchmarks/router/bench_router.py [--quick] [--home DIR] [--out FILE]
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from assistant.models.chat_format import ChatMessage  # noqa: E402
from assistant.models.generation import SamplingParams  # noqa: E402
from assistant.study.probes import Probe, score  # noqa: E402

EVAL = ROOT / "benchmarks" / "knowledge" / "eval"
STRATEGIES = ("base", "rag", "adapter", "rag+adapter", "auto")
LEVELS = ("general", "easy", "moderate", "hard")
ANSWER_TOKENS = {"general": 24, "easy": 24, "moderate": 32, "hard": 96}


def load_items(paths: list[Path]) -> list[Probe]:
    """Probes from question files ({question, expected} or {question, keywords}; level
    defaults to moderate)."""
    items = []
    for path in paths:
        for line in path.read_text().splitlines():
            if line.strip():
                row = json.loads(line)
                kind, expected = ("overlap", row["keywords"]) if "keywords" in row else ("span", row["expected"])
                items.append(Probe(row.get("level", "moderate"), row["question"],
                                   tuple(e.lower() for e in expected) if kind == "overlap" else tuple(expected), kind))
    return items


def setup(home: Path, notes: Path, profile_name: str, adapter_budget: float, probes: int):
    """Index, adapter and calibration (each skipped when already there)."""
    from assistant.knowledge.base import KnowledgeBase
    from assistant.learn.registry import AdapterRegistry
    from assistant.profiles import load_profile
    from assistant.router.calibration import CalibrationTable
    from assistant.settings import Settings
    from assistant.study.calibrate import open_assistant, run_calibration

    settings = Settings(home=home, profile=profile_name, n_ctx=1024)
    profile = load_profile(profile_name)
    if KnowledgeBase.open(settings).is_empty():
        from assistant.knowledge.indexer import Indexer

        Indexer(settings, progress=False).run([str(notes)])
    if AdapterRegistry(settings).active_path() is None and adapter_budget > 0:
        from assistant.learn.pipeline import learn
        from assistant.learn.train import TrainConfig

        learn(settings, profile, config=TrainConfig(rank=4, alpha=8, target_modules=("q_proj", "v_proj"),
                                                    budget_s=adapter_budget, batch_size=2, max_tokens=64,
                                                    evaluations=4, max_validation_examples=6))
    assistant = open_assistant(settings, profile)
    if probes > 0 and CalibrationTable.load(settings) is None:
        run_calibration(settings, profile, probes, assistant=assistant)
    return assistant


def measure(assistant, items: list[Probe]) -> dict:
    """Per level and strategy: n, accuracy, mean latency; and what auto chose."""
    from assistant.errors import AssistantError
    from assistant.orchestrator import AskRequest

    cells: dict = defaultdict(list)
    chosen: dict = defaultdict(lambda: defaultdict(int))
    for item in items:
        for strategy in STRATEGIES:
            started = time.perf_counter()
            request = AskRequest(messages=[ChatMessage("user", item.question)], strategy=strategy,
                                 sampling=SamplingParams(max_tokens=ANSWER_TOKENS[item.level], temperature=0.0, seed=0))
            try:
                answer = assistant.answer(request)
            except AssistantError:
                continue  # e.g. no adapter: that fixed strategy is absent here
            cells[(item.level, strategy)].append((score(item, answer.text), time.perf_counter() - started))
            if strategy == "auto":
                chosen[item.level][f"{answer.plan.strategy}/{answer.plan.difficulty}"] += 1
    table = {f"{level}|{strategy}": {"n": len(v), "accuracy": sum(s for s, _ in v) / len(v),
                                     "latency_s": sum(t for _, t in v) / len(v)}
             for (level, strategy), v in cells.items()}
    return {"cells": table, "auto_chose": {level: dict(c) for level, c in chosen.items()}}


def render(result: dict) -> str:
    lines = ["| level | " + " | ".join(STRATEGIES) + " | auto chose |", "|---" * (len(STRATEGIES) + 2) + "|"]
    for level in LEVELS:
        row = [level]
        for strategy in STRATEGIES:
            cell = result["cells"].get(f"{level}|{strategy}")
            row.append(f"{cell['accuracy']:.2f} / {cell['latency_s']:.2f}s" if cell else "-")
        row.append(", ".join(f"{k}: {v}" for k, v in result["auto_chose"].get(level, {}).items()))
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="two items per level, tiny adapter, few probes")
    parser.add_argument("--home", type=Path, help="ASSISTANT_HOME to use (default: a new temporary one)")
    parser.add_argument("--notes", type=Path, default=EVAL / "notes")
    parser.add_argument("--questions", type=Path, nargs="+",
                        default=[EVAL / "questions.jsonl", Path(__file__).with_name("questions.jsonl")])
    parser.add_argument("--profile", default="laptop-16gb")
    parser.add_argument("--adapter-budget", type=float, default=None, help="seconds (default 60, quick 8)")
    parser.add_argument("--calibrate-probes", type=int, default=None, help="per level (default 4, quick 2)")
    parser.add_argument("--per-level", type=int, default=None, help="items per level (default: all; quick 2)")
    parser.add_argument("--out", type=Path, help="JSON results (default: HOME/reports/router_bench.json)")
    args = parser.parse_args(argv)
    home = args.home or Path(tempfile.mkdtemp(prefix="router-bench-"))
    budget = args.adapter_budget if args.adapter_budget is not None else (8 if args.quick else 60)
    probes = args.calibrate_probes if args.calibrate_probes is not None else (2 if args.quick else 4)
    assistant = setup(home, args.notes, args.profile, budget, probes)
    items = load_items(args.questions)
    per_level = args.per_level or (2 if args.quick else None)
    if per_level:
        items = [i for level in LEVELS for i in [x for x in items if x.level == level][:per_level]]
    started = time.perf_counter()
    result = measure(assistant, items)
    result.update(items=len(items), seconds=round(time.perf_counter() - started, 1), profile=args.profile)
    out = args.out or home / "reports" / "router_bench.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(render(result))
    print(f"results: {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
