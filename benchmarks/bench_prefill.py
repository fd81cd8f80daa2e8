"""Prompt processing: prefill tokens/s and time to first token for a RAG prompt.

A RAG prompt is the profile's passages (4 x 200 tokens on most profiles) in the system
message, built by the product's ``build_rag_messages`` from notes in
benchmarks/router/eval/notes, then a question: ~1,000 tokens of which the model must
evaluate every one before it says anything. On both catalog models:

* ``sweep``: prefill tokens/s of that prompt for each ``n_batch`` (``Llama.eval`` on a cold
  cache, n_ubatch = n_batch, best of N), to choose each profile's batch size;
* ``ttft``: through the ``Engine`` at the chosen batch size, seeded, greedy-free (temperature
  1): a cold RAG question, then a second question on the same passages (warm), and on the
  default model an adapter round trip (question with the adapter, the same without, a
  second question with it). 'before' = ``prefix_reuse=False`` (every prompt from an empty
  cache, as before issue #17), 'after' = the product's reuse; the texts must match;
* ``scaling``: prefill time against prompt length (64 .. 1,024 tokens), for the log-log fit.

Threads: 2 cores shared with other jobs make llama.cpp's 2-thread barriers spin, so by
default 1 thread when the load average exceeds the cores, else every core; the load is
recorded either way. Every time is taken twice: wall clock, and the process's CPU time
(``time.process_time``): with 1 thread llama.cpp computes on the calling thread, so CPU
seconds are what the work costs when the core is not shared, and tokens per CPU second is
the figure to compare on a busy machine. The batch sizes are measured round-robin, so that
a change of load hits all of them alike.

    .venv/bin/python benchmarks/bench_prefill.py                 # full: ~1,000-token prompt, best of 3
    .venv/bin/python benchmarks/bench_prefill.py --quick         # smoke: short prompt, default model, < 20 s
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from assistant.knowledge.rag_prompt import build_rag_messages  # noqa: E402
from assistant.knowledge.search import Passage  # noqa: E402
from assistant.models.catalog import DEFAULT_MODEL, resolve_model  # noqa: E402
from assistant.models.chat_format import ChatMessage  # noqa: E402
from assistant.models.engine import Engine  # noqa: E402
from assistant.models.generation import GenerationStats, SamplingParams, TextPiece  # noqa: E402
from assistant.models.llama_loader import load_llama  # noqa: E402
from assistant.profiles import list_profiles, load_profile  # noqa: E402
from assistant.settings import Settings  # noqa: E402

MODELS = (DEFAULT_MODEL, "gemma3-270m")
NOTES = REPO / "benchmarks" / "router" / "eval" / "notes"
NOTE_FILES = ("car/fuel-log.md", "car/mot-service.md", "car/parking-permit.md", "finance/mortgage.md",
              "finance/council-tax.md", "home/boiler-service.md", "travel/lisbon-2024.md", "health/dentist.md")
QUESTIONS = ("When is the car's next MOT due?", "How much did the last fuel fill cost?")
SAMPLING = SamplingParams(max_tokens=8, temperature=1.0, seed=17)
N_CTX = 2048
SECTIONS = ("sweep", "ttft", "scaling")


def passages() -> list[Passage]:
    found = []
    for name in NOTE_FILES:
        path = NOTES / name
        if path.is_file():
            text = path.read_text()
            found.append(Passage(len(found), str(path), path.stem, 1, text.count("\n") + 1, text, 1.0))
    return found


def rag_messages(engine: Engine, question: str, prompt_tokens: int, passage_tokens: int) -> list[ChatMessage]:
    """The product's RAG conversation, filled with passages to about ``prompt_tokens``."""
    messages, _ = build_rag_messages([ChatMessage("user", question)], passages(),
                                     lambda text: len(engine.tokenize(text)), passage_tokens, prompt_tokens)
    return messages


def choose_threads(requested: int | None) -> int:
    cores = len(os.sched_getaffinity(0))
    if requested:
        return requested
    return 1 if os.getloadavg()[0] > cores else cores


def timed_prefill(llm, tokens: list[int]) -> tuple[float, float]:
    """(wall s, CPU s) to evaluate ``tokens`` from an empty cache."""
    llm.reset()
    wall, cpu = time.perf_counter(), time.process_time()
    llm.eval(tokens)
    return time.perf_counter() - wall, time.process_time() - cpu


def load_at(model, n_batch: int, threads: int):
    return load_llama(True, model_path=str(model.path), n_ctx=N_CTX, n_threads=threads, n_threads_batch=threads,
                      n_batch=n_batch, n_ubatch=n_batch, flash_attn=model.flash_attention, verbose=False)


def prefill_row(n_tokens: int, samples: list[tuple[float, float]]) -> dict:
    """Best wall and best CPU time of the samples, as seconds and tokens/s."""
    wall, cpu = min(s[0] for s in samples), min(s[1] for s in samples)
    return {"prompt_tokens": n_tokens, "seconds": wall, "cpu_seconds": cpu, "tokens_per_s": n_tokens / wall,
            "tokens_per_cpu_s": n_tokens / cpu}


def sweep(model, tokens: list[int], batches: list[int], threads: int, runs: int) -> list[dict]:
    """Prefill tokens/s of ``tokens`` per ``n_batch``, round-robin over the batch sizes."""
    engines = {n_batch: load_at(model, n_batch, threads) for n_batch in batches}
    samples: dict[int, list] = {n_batch: [] for n_batch in batches}
    for _ in range(runs):
        for n_batch, llm in engines.items():
            samples[n_batch].append(timed_prefill(llm, tokens))
    rows = []
    for n_batch in batches:
        row = {"n_batch": n_batch, **prefill_row(len(tokens), samples[n_batch])}
        rows.append(row)
        print(f"  {model.name} n_batch {n_batch:4d}: {row['tokens_per_s']:7.1f} tok/s wall, "
              f"{row['tokens_per_cpu_s']:7.1f} tok/CPU s", flush=True)
    return rows


def scaling(model, tokens: list[int], lengths: list[int], n_batch: int, threads: int, runs: int) -> list[dict]:
    """Prefill time against prompt length (prefixes of the RAG prompt, repeated if short)."""
    llm = load_at(model, n_batch, threads)
    long_enough = (tokens * (max(lengths) // len(tokens) + 1))[:max(lengths)]
    return [prefill_row(length, [timed_prefill(llm, long_enough[:length]) for _ in range(runs)])
            for length in lengths]


def ask(engine: Engine, messages: list[ChatMessage], use_adapter: bool = False) -> dict:
    """One seeded request: TTFT (wall, and CPU to the first event: the first token's text
    comes out at once unless it may start a stop string), cached tokens, text."""
    prompt = engine.chat_prompt(messages, SAMPLING, use_adapter)
    cpu = time.process_time()
    events, cpu_first = [], None
    for event in engine.generate(prompt):
        cpu_first = cpu_first if cpu_first is not None else time.process_time() - cpu
        events.append(event)
    stats: GenerationStats = events[-1]
    evaluated = stats.prompt_tokens - stats.prompt_cached_tokens
    return {"ttft_s": stats.time_to_first_token_s, "cpu_to_first_event_s": cpu_first,
            "prompt_tokens": stats.prompt_tokens, "cached_tokens": stats.prompt_cached_tokens,
            "evaluated_tokens": evaluated, "prefill_tokens_per_s": evaluated / stats.time_to_first_token_s,
            "text": "".join(e.text for e in events if isinstance(e, TextPiece))}


def random_adapter(settings: Settings, model, rank: int) -> Path:
    """A random rank-``rank`` LoRA on every layer's q/v projections of the default model
    (its values do not matter here: the cost of running it and of switching does)."""
    import torch

    from assistant.learn.export import AdapterMetadata, write_adapter
    from assistant.models.catalog import sha256_file

    width = int(model.info.arch_value("embedding_length"))
    kv_width = width * int(model.info.arch_value("attention.head_count_kv")) // int(
        model.info.arch_value("attention.head_count"))
    generator = torch.Generator().manual_seed(0)
    state = {}
    for layer in range(int(model.info.arch_value("block_count"))):
        for module, out in (("q_proj", width), ("v_proj", kv_width)):
            prefix = f"base_model.model.model.layers.{layer}.self_attn.{module}"
            state[f"{prefix}.lora_A.weight"] = torch.randn(rank, width, generator=generator) * 0.02
            state[f"{prefix}.lora_B.weight"] = torch.randn(out, rank, generator=generator) * 0.02
    meta = AdapterMetadata(name="bench", base_model=model.name, base_sha256=sha256_file(model.path), rank=rank,
                           alpha=2 * rank, target_modules=("q_proj", "v_proj"), created=time.time(),
                           data_snapshot="bench", val_loss=float("nan"), initial_val_loss=float("nan"),
                           train_seconds=0.0, budget_s=0.0, steps=0)
    settings.layout.adapters.mkdir(parents=True, exist_ok=True)
    return write_adapter(settings.layout.adapters / "bench.gguf", state, model.info, meta)


def ttft(model, settings: Settings, n_batch: int, threads: int, prompt_tokens: int, passage_tokens: int,
         runs: int, adapter: bool) -> dict:
    """Cold and warm RAG questions (and an adapter round trip), before and after, median of ``runs``."""
    result = {}
    adapter_path = random_adapter(settings, model, rank=8) if adapter else None
    for label, reuse in (("before", False), ("after", True)):
        engine = Engine(model, n_ctx=N_CTX, n_threads=threads, n_batch=n_batch, prefix_reuse=reuse)
        first, second = (rag_messages(engine, q, prompt_tokens, passage_tokens) for q in QUESTIONS)
        samples: dict[str, list[dict]] = {"cold": [], "warm": []}
        for _ in range(runs):
            engine.prefixes.invalidate()
            samples["cold"].append(ask(engine, first))
            samples["warm"].append(ask(engine, second))
        if adapter_path is not None:
            engine.load_adapter(adapter_path)
            samples["adapter_round_trip"] = []
            for _ in range(runs):
                ask(engine, first, use_adapter=True)
                ask(engine, first)
                samples["adapter_round_trip"].append(ask(engine, second, use_adapter=True))
        result[label] = {case: {**{key: statistics.median(s[key] for s in rows) for key in
                                   ("ttft_s", "cpu_to_first_event_s", "prompt_tokens", "cached_tokens",
                                    "evaluated_tokens", "prefill_tokens_per_s")}, "text": rows[0]["text"],
                                "same_text_every_run": len({s["text"] for s in rows}) == 1}
                         for case, rows in samples.items()}
        del engine
    result["same_text_before_after"] = all(result["before"][case]["text"] == result["after"][case]["text"]
                                           for case in result["after"])
    for case, after in result["after"].items():
        before = result["before"][case]
        print(f"  {model.name} {case:18s}: TTFT {before['ttft_s']:.3f} s -> {after['ttft_s']:.3f} s wall, "
              f"{before['cpu_to_first_event_s']:.3f} -> {after['cpu_to_first_event_s']:.3f} CPU s "
              f"({after['cached_tokens']:.0f} of {after['prompt_tokens']:.0f} tokens cached)", flush=True)
    return result


def profile_batches() -> dict[str, int]:
    return {name: load_profile(name).n_batch for name in list_profiles()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="short prompt, default model only, 1 run")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "prefill.json")
    parser.add_argument("--threads", type=int, default=None, help="default: 1 on a busy machine, else every core")
    parser.add_argument("--n-batch", type=int, default=None, help="for ttft and scaling; default: laptop-16gb's (quick: 64)")
    parser.add_argument("--runs", type=int, default=None, help="repetitions (best / median of); default 3, quick 1")
    parser.add_argument("--sections", default=",".join(SECTIONS), help=f"comma-separated, of {', '.join(SECTIONS)}")
    args = parser.parse_args(argv)

    quick = args.quick
    threads = choose_threads(args.threads)
    runs = args.runs or (1 if quick else 3)
    # quick: a small batch, so that its short prompt still shows the reuse
    n_batch = args.n_batch or (64 if quick else load_profile("laptop-16gb").n_batch)
    models = MODELS[:1] if quick else MODELS
    sections = [name for name in args.sections.split(",") if name]
    if set(sections) - set(SECTIONS):
        parser.error(f"--sections: choose from {', '.join(SECTIONS)}")
    batches = [32, 128] if quick else [32, 64, 128, 256, 512]
    lengths = [32, 64, 128] if quick else [64, 128, 256, 512, 1024]
    prompt_tokens, passage_tokens = (200, 50) if quick else (1000, 200)
    load_before = os.getloadavg()
    started = time.perf_counter()
    print(f"threads {threads}, load average {load_before[0]:.2f}, n_batch {n_batch}", flush=True)
    with tempfile.TemporaryDirectory() as home:
        settings = Settings(home=Path(home))
        report = {"config": {"quick": quick, "threads": threads, "cores": len(os.sched_getaffinity(0)),
                             "runs": runs, "n_batch": n_batch, "batches": batches, "lengths": lengths,
                             "rag_prompt_tokens_target": prompt_tokens, "passage_tokens": passage_tokens,
                             "load_average_before": list(load_before), "profile_n_batch": profile_batches()},
                  "models": {}}
        for name in models:
            model = resolve_model(name, settings)
            probe = Engine(model, n_ctx=N_CTX, n_threads=threads, n_batch=n_batch)
            tokens = probe.chat_prompt(rag_messages(probe, QUESTIONS[0], prompt_tokens, passage_tokens),
                                       SAMPLING).tokens
            del probe
            print(f"{name}: RAG prompt {len(tokens)} tokens", flush=True)
            entry = report["models"][name] = {"rag_prompt_tokens": len(tokens)}
            if "sweep" in sections:
                entry["sweep"] = sweep(model, tokens, batches, threads, runs)
            if "ttft" in sections:
                entry["ttft"] = ttft(model, settings, n_batch, threads, prompt_tokens, passage_tokens, runs,
                                     adapter=not quick and name == DEFAULT_MODEL)
            if "scaling" in sections:
                entry["scaling"] = scaling(model, tokens, lengths, n_batch, threads, runs)
        report["config"]["load_average_after"] = list(os.getloadavg())
        report["config"]["wall_s"] = time.perf_counter() - started
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(f"wrote {args.out} ({report['config']['wall_s']:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
