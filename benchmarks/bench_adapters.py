"""Adapter learning on this device: training tokens/s, adapter switch time, held-out
perplexity (base vs adapter), validation loss against wall time, and compression x data
amount. Notes: the eval set in benchmarks/knowledge/eval/notes, indexed into a temp home.

    .venv/bin/python benchmarks/bench_adapters.py            # full: 240 s curve, 6 runs of 60 s
    .venv/bin/python benchmarks/bench_adapters.py --quick    # smoke: 15 s curve, 4 runs of 6 s
"""
from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from assistant.knowledge.indexer import Indexer  # noqa: E402
from assistant.learn.data import read_chunks, split_by_document  # noqa: E402
from assistant.learn.export import AdapterMetadata, write_adapter  # noqa: E402
from assistant.learn.hf_model import load_hf_model  # noqa: E402
from assistant.learn.train import TrainConfig, add_lora, train_lora  # noqa: E402
from assistant.models.catalog import resolve_model, sha256_file  # noqa: E402
from assistant.models.chat_format import ChatMessage  # noqa: E402
from assistant.models.engine import Engine  # noqa: E402
from assistant.models.generation import SamplingParams  # noqa: E402
from assistant.models.quantize import lower_bit_variant, quantized_variant  # noqa: E402
from assistant.settings import Settings  # noqa: E402

NOTES = REPO / "benchmarks" / "knowledge" / "eval" / "notes"
THREADS = 2


def run_training(model, tokenizer, dataset, config: TrainConfig):
    """A fresh LoRA on ``model``, trained; the wrapper is removed afterwards."""
    peft_model = add_lora(model, config)
    try:
        return train_lora(peft_model, tokenizer, dataset, config)
    finally:
        peft_model.unload()


def curve(model, tokenizer, dataset, budgets: list[float]) -> dict:
    """One run as long as the longest budget, never stopping early, validated often. With a
    constant learning rate and a fixed seed a shorter budget is a prefix of this run, so the
    best validation loss seen by time t is what a run with budget t would export."""
    config = TrainConfig(budget_s=max(budgets), evaluations=16, patience=10**6, learning_rate=3e-4)
    result = run_training(model, tokenizer, dataset, config)
    by_budget = {}
    for budget in budgets:
        seen = [h["val_loss"] for h in result.history if h["seconds"] <= budget * 1.02]
        by_budget[str(int(budget))] = min(seen) if seen else None
    return {"history": result.history, "best_val_loss_by_budget": by_budget,
            "initial_val_loss": result.initial_val_loss, "tokens_per_s": result.tokens_per_s,
            "steps": result.steps, "train_seconds": result.train_seconds, "result": result}


def switch_times(settings: Settings, adapter_path: Path, toggles: int) -> list[float]:
    """Seconds per on/off switch of a loaded adapter (measured inside the engine)."""
    engine = Engine(resolve_model("default", settings), n_ctx=512, n_threads=THREADS)
    engine.load_adapter(adapter_path)
    prompt_params = SamplingParams(max_tokens=1, temperature=0.0)
    times = []
    for index in range(toggles):
        prompt = engine.chat_prompt([ChatMessage("user", "Hello")], prompt_params, use_adapter=index % 2 == 0)
        list(engine.generate(prompt))
        times.append(engine.last_switch_s)
    return times


def export(settings: Settings, model_name: str, result, config: TrainConfig, dataset) -> Path:
    model = resolve_model(model_name, settings)
    path = settings.layout.adapters / "bench.gguf"
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = AdapterMetadata(name="bench", base_model=model.name, base_sha256=sha256_file(model.path),
                           rank=config.rank, alpha=config.alpha, target_modules=config.target_modules,
                           created=time.time(), data_snapshot=dataset.snapshot, val_loss=result.best_val_loss,
                           initial_val_loss=result.initial_val_loss, train_seconds=result.train_seconds,
                           budget_s=config.budget_s, steps=result.best_step)
    return write_adapter(path, result.best_state, model.info, meta)


def main(argv: list[str] | None = None) -> int:
    """Run every measurement and print markdown tables; JSON goes to --out."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "adapters.json")
    args = parser.parse_args(argv)
    budgets = [5.0, 10.0, 15.0] if args.quick else [30.0, 60.0, 120.0, 240.0]
    grid_budget = 6.0 if args.quick else 60.0
    fractions = [0.5, 1.0] if args.quick else [0.25, 0.5, 1.0]

    settings = Settings(home=Path(tempfile.mkdtemp(prefix="bench-adapters-")))
    Indexer(settings, progress=False).run([str(NOTES)])
    chunks = read_chunks(settings)
    full = split_by_document(chunks)
    shipped = resolve_model("default", settings)

    model, tokenizer = load_hf_model(shipped.path, THREADS)
    timeline = curve(model, tokenizer, full, budgets)
    config = TrainConfig(budget_s=max(budgets))
    adapter = export(settings, "default", timeline.pop("result"), config, full)
    switches = switch_times(settings, adapter, 10 if args.quick else 40)

    grid = []
    lower = lower_bit_variant(shipped)
    for label, path in (("shipped " + shipped.info.quantization, shipped.path),
                        (f"requantized {lower}", quantized_variant(shipped, lower, settings.layout.model_variants))):
        if path != shipped.path:
            model, tokenizer = load_hf_model(path, THREADS)
        for fraction in fractions:
            dataset = split_by_document(chunks, data_fraction=fraction)
            result = run_training(model, tokenizer, dataset, TrainConfig(budget_s=grid_budget, patience=10**6))
            grid.append({"model": label, "data": fraction, "base_val_loss": result.initial_val_loss,
                         "adapter_val_loss": result.best_val_loss, "steps": result.steps,
                         "train_examples": len(dataset.train)})

    report = {
        "config": {"quick": args.quick, "budgets_s": budgets, "grid_budget_s": grid_budget, "threads": THREADS,
                   "notes": str(NOTES.relative_to(REPO)), "train_examples": len(full.train),
                   "validation_examples": len(full.validation)},
        "training_tokens_per_s": timeline["tokens_per_s"],
        "switch_ms_median": 1000 * statistics.median(switches), "switch_ms_max": 1000 * max(switches),
        "perplexity_base": math.exp(timeline["initial_val_loss"]),
        "perplexity_adapter": math.exp(min(v for v in timeline["best_val_loss_by_budget"].values() if v)),
        "val_loss_by_budget": timeline["best_val_loss_by_budget"], "curve": timeline["history"], "grid": grid,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(f"training: {report['training_tokens_per_s']:.0f} tokens/s on {THREADS} threads; adapter switch: "
          f"median {report['switch_ms_median']:.2f} ms, max {report['switch_ms_max']:.2f} ms")
    print(f"held-out perplexity: base {report['perplexity_base']:.2f} -> adapter {report['perplexity_adapter']:.2f}")
    print("\n| budget (s) | best validation loss |\n|---|---|")
    print(f"| 0 | {timeline['initial_val_loss']:.3f} |")
    for budget, loss in report["val_loss_by_budget"].items():
        print(f"| {budget} | {loss:.3f} |" if loss is not None else f"| {budget} | n/a |")
    print("\n| model | data | base val loss | adapter val loss | gain | steps |\n|---|---|---|---|---|---|")
    for row in grid:
        print(f"| {row['model']} | {row['data']:.0%} | {row['base_val_loss']:.3f} | {row['adapter_val_loss']:.3f} | "
              f"{row['base_val_loss'] - row['adapter_val_loss']:.3f} | {row['steps']} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
