"""Adapter learning on this device: training tokens/s, the wall time until the adapter's
validation loss is within 5% of its best, adapter switch time on a real llama.cpp engine,
held-out perplexity (base vs adapter), and compression x data amount. Notes: the eval set in
benchmarks/knowledge/eval/notes, indexed into a temp home.

One training run (the product's ``add_lora`` + ``train_lora``, never stopping early) records
the validation loss against wall time and optimizer steps through ``train_lora``'s progress
callback; the time to within 5% is read off that curve, at the resolution of its validations.

Set-up that is the same on every run is made once and kept under ~/.cache/assistant/bench:
the encoder's ONNX export (for indexing the notes) and the float32 model transformers makes
from the GGUF (~20 s of GGUF parsing on 2 cores). Neither is part of what is measured.

    .venv/bin/python benchmarks/bench_adapters.py            # full: 240 s curve, 6 runs of 60 s
    .venv/bin/python benchmarks/bench_adapters.py --quick    # smoke: 8 s curve (smaller batches), 1 grid run
"""
from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from assistant.knowledge.encoders import DEFAULT_ENCODER, ENCODERS, artifact_dir, ensure_onnx  # noqa: E402
from assistant.knowledge.indexer import Indexer  # noqa: E402
from assistant.learn.data import read_chunks, split_by_document  # noqa: E402
from assistant.learn.export import AdapterMetadata, write_adapter  # noqa: E402
from assistant.models.hf_model import load_hf_model  # noqa: E402
from assistant.learn.train import TrainConfig, add_lora, train_lora  # noqa: E402
from assistant.models.catalog import resolve_model, sha256_file  # noqa: E402
from assistant.models.chat_format import ChatMessage  # noqa: E402
from assistant.models.engine import Engine  # noqa: E402
from assistant.models.generation import SamplingParams  # noqa: E402
from assistant.models.quantize import lower_bit_variant, quantized_variant  # noqa: E402
from assistant.settings import Settings  # noqa: E402

NOTES = REPO / "benchmarks" / "knowledge" / "eval" / "notes"
THREADS = 2
WITHIN = 0.05  # "within 5% of its best"
CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "assistant" / "bench"


def index_notes(settings: Settings) -> None:
    """Index the eval notes into ``settings``' home, with the encoder exported once under
    CACHE and linked in (``ensure_onnx`` re-exports it when the encoder's files change)."""
    spec = ENCODERS[DEFAULT_ENCODER]
    shared = Settings(home=CACHE / "encoder-home")
    ensure_onnx(shared, spec)
    target = artifact_dir(settings, spec)
    target.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(artifact_dir(shared, spec), target, target_is_directory=True)
    Indexer(settings, progress=False).run([str(NOTES)])


def load_training_model(gguf_path: Path) -> tuple[object, object, dict]:
    """(model, tokenizer, how it was loaded): ``load_hf_model``'s float32 model, saved under
    CACHE keyed by the GGUF's sha256 and reloaded from there on later runs (the same
    weights, tokens and logits; transformers marks a GGUF-made model unsaveable, so its
    config is written without the ``gguf`` quantization entry and its tensors by safetensors)."""
    import torch
    from safetensors.torch import save_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    started = time.perf_counter()
    folder = CACHE / "hf-models" / sha256_file(gguf_path)[:16]
    if (folder / "model.safetensors").is_file():
        torch.set_num_threads(THREADS)
        tokenizer = AutoTokenizer.from_pretrained(folder)
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
        model.eval()
        if tokenizer.pad_token_id is None:  # as load_hf_model does
            tokenizer.pad_token = tokenizer.eos_token
        return model, tokenizer, {"source": "cache", "seconds": time.perf_counter() - started}
    model, tokenizer = load_hf_model(gguf_path, THREADS)
    seconds = time.perf_counter() - started
    partial = folder.with_name(f".{folder.name}.{os.getpid()}")
    partial.mkdir(parents=True, exist_ok=True)
    config = model.config.to_dict()
    config.pop("quantization_config", None)
    type(model.config).from_dict(config).save_pretrained(partial)
    tokenizer.save_pretrained(partial)
    save_model(model, str(partial / "model.safetensors"))  # last: its presence marks the cache whole
    try:
        partial.rename(folder)  # all or nothing, even with two runs at once
    except OSError:
        shutil.rmtree(partial, ignore_errors=True)
    return model, tokenizer, {"source": "gguf", "seconds": seconds}


def run_training(model, tokenizer, dataset, config: TrainConfig):
    """A fresh LoRA on ``model``, trained; the wrapper is removed afterwards."""
    peft_model = add_lora(model, config)
    try:
        return train_lora(peft_model, tokenizer, dataset, config)
    finally:
        peft_model.unload()


class CurveRecorder:
    """``train_lora``'s progress callback: the validation points, each with the wall time
    since the run started and the time spent training (validation excluded)."""

    def __init__(self):
        self.points: list[dict] = []
        self.validation_s = 0.0  # total time inside validations so far
        self.last_seconds = 0.0  # time of the previous event

    def __call__(self, event: dict) -> None:
        if event["kind"] == "eval":
            # The run validates right after its last step event: the gap is the validation.
            self.validation_s += event["seconds"] - self.last_seconds
            self.points.append({"seconds": event["seconds"], "train_seconds": event["seconds"] - self.validation_s,
                                "step": event["step"], "val_loss": event["val_loss"]})
        self.last_seconds = event["seconds"]


def time_to_within(points: list[dict], best: float, initial: float, tolerance: float = WITHIN) -> dict:
    """The first validation whose loss is within ``tolerance`` of the best (loss <= best x
    (1 + tolerance)), and the first that has made (1 - tolerance) of the whole gain."""
    def first(threshold: float) -> dict:
        hit = next(p for p in points if p["val_loss"] <= threshold + 1e-12)
        return {"seconds": hit["seconds"], "train_seconds": hit["train_seconds"], "step": hit["step"],
                "threshold": threshold}

    return {"within_of_best": first(best * (1 + tolerance)),
            "of_gain": first(best + tolerance * (initial - best))}


def curve_config(quick: bool) -> TrainConfig:
    """The curve's run: TrainConfig's defaults (rank 8 on q/k/v/o, batches of 4 x 128 tokens)
    for 240 s, never stopping early. Quick: 8 s of batches of 2 x 48 tokens and 4
    validation examples, so that even a busy machine makes a few steps and validations."""
    if quick:
        return TrainConfig(budget_s=8.0, evaluations=4, patience=10**6, batch_size=2, max_tokens=48,
                           max_validation_examples=4)
    return TrainConfig(budget_s=240.0, evaluations=24, patience=10**6)


def curve(model, tokenizer, dataset, config: TrainConfig) -> dict:
    """One run, validated ``config.evaluations`` times. With a constant learning rate and a
    fixed seed a shorter budget is a prefix of this run, so the best validation loss seen by
    time t is what a run with budget t would export."""
    recorder = CurveRecorder()
    peft_model = add_lora(model, config)
    try:
        result = train_lora(peft_model, tokenizer, dataset, config, on_progress=recorder)
    finally:
        peft_model.unload()
    initial_eval_s = result.history[0]["seconds"]  # the first validation, before any callback
    points = [{"seconds": initial_eval_s, "train_seconds": 0.0, "step": 0, "val_loss": result.initial_val_loss}]
    points += [{**point, "train_seconds": point["train_seconds"] - initial_eval_s} for point in recorder.points]
    validation_s = recorder.validation_s + initial_eval_s
    # The lowest validation loss seen (train_lora keeps a checkpoint only for gains over 1e-4).
    best = min(points, key=lambda point: point["val_loss"])
    return {"points": points, "initial_val_loss": result.initial_val_loss, "best_val_loss": best["val_loss"],
            "best_at": {"seconds": best["seconds"], "step": best["step"], "last": best is points[-1]},
            # steps only: TrainResult.tokens_per_s counts the validations' time too
            "tokens_per_s": result.trained_tokens / max(result.train_seconds - validation_s, 1e-9),
            "tokens_per_s_with_validation": result.tokens_per_s, "trained_tokens": result.trained_tokens,
            "steps": result.steps, "train_seconds": result.train_seconds, "validation_seconds": validation_s,
            "time_to_within": time_to_within(points, best["val_loss"], result.initial_val_loss),
            "result": result, "config": config}


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
    """The run's best LoRA weights as a GGUF adapter with its metadata, in the temp home."""
    model = resolve_model(model_name, settings)
    path = settings.layout.adapters / "bench.gguf"
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = AdapterMetadata(name="bench", base_model=model.name, base_sha256=sha256_file(model.path),
                           rank=config.rank, alpha=config.alpha, target_modules=config.target_modules,
                           created=time.time(), data_snapshot=dataset.snapshot, val_loss=result.best_val_loss,
                           initial_val_loss=result.initial_val_loss, train_seconds=result.train_seconds,
                           budget_s=config.budget_s, steps=result.best_step)
    return write_adapter(path, result.best_state, model.info, meta)


def compression_grid(settings: Settings, shipped, chunks, model, tokenizer, quick: bool,
                     config: TrainConfig) -> list[dict]:
    """Validation loss after a ``config`` run, per model precision x data fraction (quick:
    the shipped model on half the data only)."""
    fractions = [0.5] if quick else [0.25, 0.5, 1.0]
    variants = [("shipped " + shipped.info.quantization, shipped.path)]
    if not quick:
        lower = lower_bit_variant(shipped)
        variants.append((f"requantized {lower}", quantized_variant(shipped, lower, settings.layout.model_variants)))
    grid = []
    for label, path in variants:
        if path != shipped.path:
            model, tokenizer = load_hf_model(path, THREADS)
        for fraction in fractions:
            dataset = split_by_document(chunks, data_fraction=fraction)
            result = run_training(model, tokenizer, dataset, config)
            grid.append({"model": label, "data": fraction, "base_val_loss": result.initial_val_loss,
                         "adapter_val_loss": result.best_val_loss, "steps": result.steps,
                         "train_examples": len(dataset.train)})
    return grid


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0..100), linear between order statistics."""
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def print_tables(report: dict) -> None:
    """The markdown summary on stdout."""
    reach = report["time_to_within_5pct"]
    print(f"training: {report['training_tokens_per_s']:.0f} tokens/s on {THREADS} threads; adapter switch: "
          f"median {report['switch_ms_median']:.3f} ms, p95 {report['switch_ms_p95']:.3f} ms")
    print(f"validation loss {report['initial_val_loss']:.3f} -> best {report['best_val_loss']:.3f}; within 5% of "
          f"best after {reach['within_of_best']['seconds']:.1f} s wall ({reach['within_of_best']['step']} steps), "
          f"95% of the gain after {reach['of_gain']['seconds']:.1f} s wall ({reach['of_gain']['step']} steps)")
    print(f"held-out perplexity: base {report['perplexity_base']:.2f} -> adapter {report['perplexity_adapter']:.2f}")
    print("\n| wall s | training s | step | validation loss |\n|---|---|---|---|")
    for point in report["curve"]:
        print(f"| {point['seconds']:.1f} | {point['train_seconds']:.1f} | {point['step']} | {point['val_loss']:.3f} |")
    print("\n| model | data | base val loss | adapter val loss | gain | steps |\n|---|---|---|---|---|---|")
    for row in report["grid"]:
        print(f"| {row['model']} | {row['data']:.0%} | {row['base_val_loss']:.3f} | {row['adapter_val_loss']:.3f} | "
              f"{row['base_val_loss'] - row['adapter_val_loss']:.3f} | {row['steps']} |")


def main(argv: list[str] | None = None) -> int:
    """Run every measurement and print markdown tables; JSON goes to --out."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "adapters.json")
    args = parser.parse_args(argv)
    load_before = os.getloadavg()[0]  # other work on the cores slows training and switches
    # quick: a smoke run of every number; the grid is one run on the shipped model.
    config = curve_config(args.quick)
    grid_config = replace(config, budget_s=3.0, evaluations=2) if args.quick else TrainConfig(patience=10**6)
    toggles = 20 if args.quick else 100

    settings = Settings(home=Path(tempfile.mkdtemp(prefix="bench-adapters-")))
    index_notes(settings)
    chunks = read_chunks(settings)
    full = split_by_document(chunks)
    shipped = resolve_model("default", settings)

    model, tokenizer, model_load = load_training_model(shipped.path)
    timeline = curve(model, tokenizer, full, config)
    adapter = export(settings, "default", timeline.pop("result"), timeline.pop("config"), full)
    switches = switch_times(settings, adapter, toggles)

    grid = compression_grid(settings, shipped, chunks, model, tokenizer, args.quick, grid_config)

    report = {
        "config": {"quick": args.quick, "curve_budget_s": config.budget_s, "evaluations": config.evaluations,
                   "batch_size": config.batch_size, "max_tokens": config.max_tokens, "rank": config.rank,
                   "validation_subset": config.max_validation_examples, "model_load": model_load,
                   "grid_budget_s": grid_config.budget_s, "threads": THREADS, "within": WITHIN,
                   "switch_toggles": toggles, "cores": os.cpu_count(),
                   "load_average_1min": [load_before, os.getloadavg()[0]],
                   "notes": str(NOTES.relative_to(REPO)), "train_examples": len(full.train),
                   "validation_examples": len(full.validation)},
        "training_tokens_per_s": timeline["tokens_per_s"], "trained_tokens": timeline["trained_tokens"],
        "training_tokens_per_s_with_validation": timeline["tokens_per_s_with_validation"],
        "best_at": timeline["best_at"],
        "steps": timeline["steps"], "train_seconds": timeline["train_seconds"],
        "validation_seconds": timeline["validation_seconds"],
        "initial_val_loss": timeline["initial_val_loss"], "best_val_loss": timeline["best_val_loss"],
        "time_to_within_5pct": timeline["time_to_within"],
        "switch_ms": [1000 * t for t in switches], "switch_ms_median": 1000 * statistics.median(switches),
        "switch_ms_p95": 1000 * percentile(switches, 95), "switch_ms_max": 1000 * max(switches),
        "perplexity_base": math.exp(timeline["initial_val_loss"]),
        "perplexity_adapter": math.exp(timeline["best_val_loss"]),
        "curve": timeline["points"], "grid": grid,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print_tables(report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
