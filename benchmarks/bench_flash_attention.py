"""Flash attention with an f16 KV cache: prefill and decode speed, off against on, per model.

llama.cpp's flash attention is one fused operation where attention is otherwise several
(scores, mask, softmax, weighted sum), each a graph node with a thread barrier; for a small
model decode is per-node overhead as much as arithmetic, so fewer nodes can be faster, or the
fused kernel slower, depending on the model and on how many positions it attends to. The
engine uses it only where it must (a q8_0 V cache needs it); these figures are why it stays
off with f16 (README, "Flash attention").

Both variants are loaded side by side, as the engine loads a model (f16 KV cache, n_ctx
2,048, n_batch 512, the CPU's extra buffers unless the AMX guard says no), and measured
round-robin so that a change of load hits both alike. Per round and variant:

* ``prefill``: a cold RAG-shaped prompt (``bench_serving.rag_prompt``, ~700 tokens), tokens/s;
* ``decode``: greedy tokens/s after a short prompt (end tokens banned, the first token not
  counted), and ``decode_after_rag``: the same after the RAG prompt, where attention reads
  ~700 cached positions per token;
* ``rag_answer``: the answer's tokens per second of the whole call after the RAG prompt,
  prefill included (what a person waiting for a RAG answer sees);
* whether the greedy tokens of both variants agree (fused attention rounds differently).

Ratios are on / off, the median of per-round ratios with a bootstrap 95% interval.

    .venv/bin/python benchmarks/bench_flash_attention.py            # both models, 7 rounds, ~5 min
    .venv/bin/python benchmarks/bench_flash_attention.py --quick    # default model, 2 rounds, 2 notes: a smoke run
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from assistant.models.build_info import amx_guard_needed, cpu_flags, llama_build_features  # noqa: E402
from assistant.models.catalog import DEFAULT_MODEL, resolve_model  # noqa: E402
from assistant.models.llama_loader import load_llama  # noqa: E402
from assistant.settings import Settings  # noqa: E402
from benchmarks.bench_bandwidth import end_token_ids  # noqa: E402
from benchmarks.bench_serving import rag_prompt  # noqa: E402
from benchmarks.report.common import bootstrap_ci, machine, write_json  # noqa: E402

MODELS = (DEFAULT_MODEL, "gemma3-270m")
VARIANTS = {"off": False, "on": True}
SHORT_PROMPT = "Write a long story about a lighthouse keeper who finds an old map."
FULL = {"rounds": 7, "decode_tokens": 128, "rag_decode_tokens": 64, "rag_notes": 6, "models": MODELS}
QUICK = {"rounds": 2, "decode_tokens": 16, "rag_decode_tokens": 8, "rag_notes": 2, "models": (DEFAULT_MODEL,)}
MEASURES = ("prefill", "decode", "decode_after_rag", "rag_answer")


def load(model_path: Path, flash_attn: bool, threads: int):
    """A model loaded the way the engine loads it, with flash attention off or on."""
    extra_buffers = not amx_guard_needed(cpu_flags(), llama_build_features())
    return load_llama(extra_buffers, model_path=str(model_path), n_ctx=2048, n_threads=threads,
                      n_threads_batch=threads, n_batch=512, n_ubatch=512, flash_attn=flash_attn, verbose=False)


def greedy(llm, prompt: list[int], tokens: int, banned: list[int]) -> tuple[float, list[int]]:
    """(tokens/s after the first token, the tokens) of a greedy run from an empty cache."""
    import llama_cpp

    def ban(_ids, scores):
        scores[banned] = -float("inf")
        return scores

    llm.reset()
    made, first = [], None
    for token in llm.generate(prompt, temp=0.0, repeat_penalty=1.0, reset=True,
                              logits_processor=llama_cpp.LogitsProcessorList([ban])):
        first = first or time.perf_counter()
        made.append(token)
        if len(made) >= tokens:
            break
    return (len(made) - 1) / (time.perf_counter() - first), made


def one_round(llm, rag: list[int], short: list[int], mode: dict, banned: list[int]) -> tuple[dict, list[int]]:
    """One round's figures for one variant, and its greedy tokens (both runs)."""
    llm.reset()
    started = time.perf_counter()
    llm.eval(rag)
    prefill = len(rag) / (time.perf_counter() - started)
    decode, short_tokens = greedy(llm, short, mode["decode_tokens"], banned)
    started = time.perf_counter()
    after_rag, rag_tokens = greedy(llm, rag, mode["rag_decode_tokens"], banned)
    answer = len(rag_tokens) / (time.perf_counter() - started)  # the whole answer: prefill + decode
    return ({"prefill": prefill, "decode": decode, "decode_after_rag": after_rag, "rag_answer": answer},
            short_tokens + rag_tokens)


def bench_model(name: str, mode: dict, threads: int, home: Path) -> dict:
    """Both variants of one model, round-robin; medians, ratios and token agreement."""
    path = resolve_model(name, Settings(home=home)).path
    llms = {variant: load(path, flash_attn, threads) for variant, flash_attn in VARIANTS.items()}
    tokenize = llms["off"].tokenize
    rag = tokenize(rag_prompt("Which notes mention a deadline?", mode["rag_notes"]).encode(), add_bos=True)
    short = tokenize(SHORT_PROMPT.encode(), add_bos=True)
    banned = end_token_ids(llms["off"])
    samples = {variant: {m: [] for m in MEASURES} for variant in VARIANTS}
    agree = []
    for _ in range(mode["rounds"]):
        made = {}
        for variant, llm in llms.items():
            figures, made[variant] = one_round(llm, rag, short, mode, banned)
            for measure, value in figures.items():
                samples[variant][measure].append(value)
        agree.append(made["on"] == made["off"])
    result = {"rag_prompt_tokens": len(rag),
              "tokens_agree_share": sum(agree) / len(agree), "variants": {}, "ratios": {}}
    for variant in VARIANTS:
        result["variants"][variant] = {f"{m}_tps_median": statistics.median(samples[variant][m]) for m in MEASURES}
    for measure in MEASURES:
        per_round = [on / off for on, off in zip(samples["on"][measure], samples["off"][measure])]
        low, high = bootstrap_ci(per_round)
        result["ratios"][measure] = {"median": statistics.median(per_round), "ci95": [low, high],
                                     "per_round": per_round}
    return result


def main(argv: list[str] | None = None) -> int:
    """Measure, print one line per model and figure, and write JSON to --out."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="the default model, 2 rounds, short runs")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "flash_attention.json")
    args = parser.parse_args(argv)
    mode = QUICK if args.quick else FULL
    started = time.perf_counter()
    report = {"config": {**mode, "threads": args.threads, "kv_cache_type": "f16", "quick": args.quick},
              "machine": machine(), "models": {}}
    for name in mode["models"]:
        with tempfile.TemporaryDirectory() as home:  # where gemma's chunks are assembled
            report["models"][name] = data = bench_model(name, mode, args.threads, Path(home))
        for measure, ratio in data["ratios"].items():
            off, on = (data["variants"][v][f"{measure}_tps_median"] for v in VARIANTS)
            print(f"{name} {measure}: off {off:.1f} tok/s, on {on:.1f} tok/s, on/off {ratio['median']:.3f} "
                  f"(95% CI {ratio['ci95'][0]:.3f}-{ratio['ci95'][1]:.3f})", flush=True)
    report["seconds"] = round(time.perf_counter() - started, 1)
    write_json(args.out, report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
