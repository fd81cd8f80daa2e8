"""The physical limit of decoding on this device. Generating one token reads every weight
a token's forward pass uses, plus the KV cache so far, so decode speed is bounded by

    bound tok/s = memory bandwidth / bytes read per generated token.

Bandwidth: a STREAM-style triad ``a = b + s*c`` over float64 arrays well past the last-level
cache, done block-wise with ``out=`` (no temporaries), counted as STREAM does: 3 arrays x 8
bytes per element per pass (the write-allocate read of ``a`` is not counted), best of N
passes, with 1 thread and with 2 (each thread its half; numpy ufuncs release the GIL).
Decode: ``Llama.generate`` on both catalog models, greedy, end-of-generation tokens banned,
2 threads (and 1, which a busy machine slows far less). A run stops at its deadline.

    .venv/bin/python benchmarks/bench_bandwidth.py           # full: arrays 8x LLC, 128 tokens x 3 runs
    .venv/bin/python benchmarks/bench_bandwidth.py --quick   # smoke: arrays 2x LLC, 32 tokens x 1 run, <= 3 s
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from assistant.models.catalog import DEFAULT_MODEL, resolve_model  # noqa: E402
from assistant.models.gguf_info import GGUFInfo  # noqa: E402
from assistant.settings import Settings  # noqa: E402

MODELS = (DEFAULT_MODEL, "gemma3-270m")
THREADS = 2
GOAL = 0.5  # decode at >= 50% of the bandwidth bound
BLOCK_ELEMENTS = 1 << 16  # 512 KiB per array block: the a-block written by s*c is re-read from cache
KV_BYTES_PER_ELEMENT = 2  # llama.cpp's default KV cache type, f16
PROMPT = "The history of the bicycle begins in the early nineteenth century, when"
FALLBACK_LLC_BYTES = 32 << 20


def llc_bytes() -> tuple[int, str]:
    """Size of the last-level cache (the highest level that holds data) and where it came from."""
    best_level, best_size = 0, 0
    for index in sorted(Path("/sys/devices/system/cpu/cpu0/cache").glob("index*")):
        try:
            level = int((index / "level").read_text())
            kind = (index / "type").read_text().strip()
            text = (index / "size").read_text().strip()
        except (OSError, ValueError):
            continue
        units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
        size = int(text[:-1]) * units[text[-1]] if text[-1] in units else int(text)
        if kind != "Instruction" and level > best_level:
            best_level, best_size = level, size
    if best_size:
        return best_size, f"L{best_level} (sysfs)"
    return FALLBACK_LLC_BYTES, "assumed 32 MiB (sysfs unreadable)"


def triad(a: np.ndarray, b: np.ndarray, c: np.ndarray, scalar: float) -> None:
    """a = b + scalar*c, one cache-sized block at a time, with no temporary array."""
    for start in range(0, len(a), BLOCK_ELEMENTS):
        block = slice(start, start + BLOCK_ELEMENTS)
        np.multiply(c[block], scalar, out=a[block])
        np.add(a[block], b[block], out=a[block])


def timed_pass(a: np.ndarray, b: np.ndarray, c: np.ndarray, threads: int) -> float:
    """Seconds for one triad over the whole arrays, split evenly over ``threads``."""
    if threads == 1:
        started = time.perf_counter()
        triad(a, b, c, 3.0)
        return time.perf_counter() - started
    bounds = np.linspace(0, len(a), threads + 1).astype(int)
    barrier = threading.Barrier(threads + 1)

    def work(lo: int, hi: int) -> None:
        barrier.wait()
        triad(a[lo:hi], b[lo:hi], c[lo:hi], 3.0)

    workers = [threading.Thread(target=work, args=(lo, hi)) for lo, hi in zip(bounds[:-1], bounds[1:])]
    for worker in workers:
        worker.start()
    barrier.wait()  # all threads start together
    started = time.perf_counter()
    for worker in workers:
        worker.join()
    return time.perf_counter() - started


def bandwidth(elements: int, repetitions: int) -> dict:
    """Best-of-``repetitions`` triad bandwidth (GB/s, 10^9 bytes) with 1 and 2 threads."""
    a, b, c = (np.full(elements, value) for value in (0.0, 1.0, 2.0))  # written: pages faulted in now
    counted_bytes = 3 * 8 * elements  # STREAM convention for the triad
    result = {"array_mb": 8 * elements / 1e6, "total_mb": 3 * 8 * elements / 1e6, "repetitions": repetitions}
    for threads in (1, THREADS):
        timed_pass(a, b, c, threads)  # warm-up, not counted (STREAM drops its first pass too)
        seconds = [timed_pass(a, b, c, threads) for _ in range(repetitions)]
        result[f"gbps_{threads}_threads"] = counted_bytes / min(seconds) / 1e9
        result[f"gbps_{threads}_threads_median"] = counted_bytes / statistics.median(seconds) / 1e9
    assert np.allclose(a[:: max(1, elements // 1000)], 1.0 + 3.0 * 2.0)  # the triad did run
    result["gbps_best"] = max(result["gbps_1_threads"], result[f"gbps_{THREADS}_threads"])
    return result


def tensor_bytes(info: GGUFInfo, name: str, elements: int | None = None) -> int:
    """Bytes of a tensor (or of its first ``elements``) in its stored ggml type."""
    from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType

    block, block_bytes = GGML_QUANT_SIZES[GGMLQuantizationType(info.tensor_types[name])]
    if elements is None:
        elements = int(np.prod(info.tensor_shapes[name]))
    return elements // block * block_bytes


def weight_bytes_per_token(info: GGUFInfo) -> dict:
    """Bytes of weights one decoded token reads: every tensor but the token embedding (all
    layers, norms, the output head), plus, with tied embeddings (no ``output.weight``), the
    whole token-embedding matrix, which the output head multiplies by; the input lookup
    reads one row of it."""
    embedding = "token_embd.weight"
    total = sum(tensor_bytes(info, name) for name in info.tensor_shapes)
    tied = "output.weight" not in info.tensor_shapes
    row = tensor_bytes(info, embedding, elements=info.tensor_shapes[embedding][0])
    per_token = total - tensor_bytes(info, embedding) + row + (tensor_bytes(info, embedding) if tied else 0)
    return {"weight_bytes": total, "weight_bytes_per_token": per_token, "tied_embeddings": tied,
            "embedding_bytes": tensor_bytes(info, embedding)}


def kv_bytes_per_position(info: GGUFInfo) -> int:
    """KV-cache bytes read per context position: layers x (K + V) x kv heads x head dim x f16."""
    heads = int(info.arch_value("attention.head_count"))
    head_dim = int(info.arch_value("attention.key_length", int(info.arch_value("embedding_length")) // heads))
    value_dim = int(info.arch_value("attention.value_length", head_dim))
    kv_heads = int(info.arch_value("attention.head_count_kv", heads))
    return int(info.arch_value("block_count")) * kv_heads * (head_dim + value_dim) * KV_BYTES_PER_ELEMENT


def end_token_ids(llm) -> list[int]:
    """Every end-of-generation token (EOS, <|im_end|>, <end_of_turn>...), as llama.cpp marks them."""
    import llama_cpp

    vocab = llama_cpp.llama_model_get_vocab(llm.model)
    return [token for token in range(llm.n_vocab()) if llama_cpp.llama_vocab_is_eog(vocab, token)]


def decode(model_path: Path, tokens: int, runs: int, deadline_s: float, threads: int = THREADS,
           flash_attention: bool = False) -> dict:
    """Median decode tok/s of ``Llama.generate`` (greedy, ``tokens`` tokens, end tokens banned;
    f16 KV cache, flash attention as the catalog chooses for the model); a run that passes
    ``deadline_s`` stops early and is rated on the tokens it made."""
    import llama_cpp

    from assistant.models.build_info import amx_guard_needed, cpu_flags, llama_build_features
    from assistant.models.llama_loader import load_llama

    extra_buffers = not amx_guard_needed(cpu_flags(), llama_build_features())
    llm = load_llama(extra_buffers, model_path=str(model_path), n_ctx=512, n_threads=threads,
                     n_threads_batch=threads, flash_attn=flash_attention, verbose=False)
    banned = end_token_ids(llm)

    def ban(_ids, scores):
        scores[banned] = -np.inf
        return scores

    processor = llama_cpp.LogitsProcessorList([ban])
    prompt = llm.tokenize(PROMPT.encode(), add_bos=True)
    rates, produced_per_run = [], []
    for _ in range(runs):
        llm.reset()  # no KV prefix reuse: every run decodes the same positions
        started = time.perf_counter()
        first = last = None
        produced = 0
        for _token in llm.generate(prompt, temp=0.0, repeat_penalty=1.0, logits_processor=processor):
            last = time.perf_counter()
            first = first or last
            produced += 1
            if produced >= tokens or (produced >= 2 and last - started > deadline_s):
                break
        rates.append((produced - 1) / (last - first))
        produced_per_run.append(produced)
    del llm
    return {"decode_tps": statistics.median(rates), "decode_tps_runs": rates, "tokens_per_run": produced_per_run,
            "prompt_tokens": len(prompt), "banned_tokens": len(banned)}


def model_row(name: str, settings: Settings, gbps: float, llc: int, tokens: int, runs: int,
              deadline_s: float) -> dict:
    """One model: what a token reads, the bound that implies, and what decoding achieves."""
    model = resolve_model(name, settings)
    weights = weight_bytes_per_token(model.info)
    measured = decode(model.path, tokens, runs, deadline_s, flash_attention=model.flash_attention)
    # One thread too: on a busy machine llama.cpp's threads spin at every barrier while their
    # peer waits for a core, and 2 threads can decode many times slower than 1.
    one_thread = decode(model.path, tokens, runs, deadline_s, 1, model.flash_attention)["decode_tps"]
    # Decoded tokens sit at positions prompt .. prompt + tokens - 1: the mean is the midpoint.
    mean_position = measured["prompt_tokens"] + (tokens - 1) / 2
    kv = kv_bytes_per_position(model.info) * mean_position
    per_token = weights["weight_bytes_per_token"] + kv
    bound = gbps * 1e9 / per_token
    return {"model": name, "file": model.path.name, "quantization": model.info.quantization, **weights,
            "kv_bytes_per_position": kv_bytes_per_position(model.info), "mean_position": mean_position,
            "kv_bytes_per_token": kv, "bytes_per_token": per_token, "bound_tps": bound, **measured,
            "fraction_of_bound": measured["decode_tps"] / bound, "decode_tps_1_thread": one_thread,
            "flash_attention": model.flash_attention,
            "fraction_of_bound_1_thread": one_thread / bound, "goal_met": measured["decode_tps"] / bound >= GOAL,
            "fits_in_llc": weights["weight_bytes_per_token"] <= llc}


def main(argv: list[str] | None = None) -> int:
    """Measure bandwidth and both models' decode rate; print a table, write JSON to --out."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "bandwidth.json")
    args = parser.parse_args(argv)
    load_before = os.getloadavg()[0]  # other work on the cores slows both measurements
    llc, llc_source = llc_bytes()
    # Each array 8x the LLC (and the three >= 256 MB) in full mode; 2x the LLC in quick mode.
    array_bytes = 2 * llc if args.quick else max(8 * llc, (256 << 20) // 3)
    tokens, runs, repetitions, deadline_s = (32, 1, 5, 3.0) if args.quick else (128, 3, 10, 60.0)

    memory = bandwidth(array_bytes // 8, repetitions)
    settings = Settings(home=Path(tempfile.mkdtemp(prefix="bench-bandwidth-")))
    rows = [model_row(name, settings, memory["gbps_best"], llc, tokens, runs, deadline_s) for name in MODELS]
    report = {"config": {"quick": args.quick, "tokens": tokens, "runs": runs, "threads": THREADS,
                         "run_deadline_s": deadline_s,
                         "kv_bytes_per_element": KV_BYTES_PER_ELEMENT, "goal_fraction": GOAL,
                         "block_elements": BLOCK_ELEMENTS, "cores": os.cpu_count(),
                         "load_average_1min": [load_before, os.getloadavg()[0]]},
              "llc_bytes": llc, "llc_source": llc_source, "bandwidth": memory, "models": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(f"triad bandwidth: {memory['gbps_1_threads']:.1f} GB/s (1 thread), "
          f"{memory[f'gbps_{THREADS}_threads']:.1f} GB/s ({THREADS} threads); arrays {memory['array_mb']:.0f} MB "
          f"each, LLC {llc / 2**20:.0f} MiB")
    print(f"\n| model | bytes/token (MB) | bound tok/s | measured tok/s ({THREADS} threads) | fraction | "
          "1 thread tok/s |\n|---|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['model']} | {row['bytes_per_token'] / 1e6:.1f} | {row['bound_tps']:.0f} | "
              f"{row['decode_tps']:.0f} | {row['fraction_of_bound']:.0%} | {row['decode_tps_1_thread']:.0f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
