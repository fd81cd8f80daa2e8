"""Physical limit: decode tokens/s against memory bandwidth / bytes read per token."""
from __future__ import annotations

from pathlib import Path

from benchmarks.report.common import load, load_note, table, verdict

TITLE = "Physical limit"
SCRIPT = "benchmarks/bench_bandwidth.py"


def commands(quick: bool, results: Path) -> list[list[str]]:
    """One run: the triad bandwidth, then both catalog models' decode rate."""
    return [[SCRIPT, "--out", str(results / "bandwidth.json")] + (["--quick"] if quick else [])]


def bandwidth_table(data: dict) -> str:
    """The triad with 1 and 2 threads, and the arrays against the last-level cache."""
    memory, threads = data["bandwidth"], data["config"]["threads"]
    return "\n".join([
        table(["threads", "triad GB/s (best)", "triad GB/s (median)"],
              [[1, memory["gbps_1_threads"], memory["gbps_1_threads_median"]],
               [threads, memory[f"gbps_{threads}_threads"], memory[f"gbps_{threads}_threads_median"]]]),
        "",
        f"Arrays: 3 x {memory['array_mb']:.0f} MB ({memory['total_mb']:.0f} MB in all); last-level cache "
        f"{data['llc_bytes'] / 2**20:.0f} MiB ({data['llc_source']}). The bound uses the best, "
        f"{memory['gbps_best']:.1f} GB/s.",
    ])


def model_table(data: dict) -> str:
    """Per model: bytes a token reads, the bound, what decoding reaches, the goal."""
    config = data["config"]
    rows = []
    for row in data["models"]:
        rows.append([row["model"] + (" (tied)" if row["tied_embeddings"] else ""), row["weight_bytes"] / 1e6,
                     row["bytes_per_token"] / 1e6, f"{row['kv_bytes_per_token'] / row['bytes_per_token']:.1%}",
                     row["bound_tps"], f"{row['decode_tps']:.1f} (best {max(row['decode_tps_runs']):.1f})",
                     f"{row['fraction_of_bound']:.0%}",
                     f"{row['decode_tps_1_thread']:.0f} ({row['fraction_of_bound_1_thread']:.0%})",
                     "yes" if row["fits_in_llc"] else "no", "met" if row["goal_met"] else "missed"])
    return table(["model", "weight MB", "bytes/token (MB)", "KV share", "bound tok/s",
                  f"measured tok/s, {config['threads']} threads: median (best)", "fraction",
                  "1 thread: tok/s (fraction)", "weights in LLC", f"goal >= {config['goal_fraction']:.0%}"], rows)


def notes(data: dict) -> list[str]:
    """One verdict per model, and what qualifies the figures."""
    config = data["config"]
    load = load_note(config.get("load_average_1min", [0.0]), config.get("cores", 1))
    lines = []
    for row in data["models"]:
        why = ("Decode pays for more than reading its weights: dequantizing and multiplying on 2 cores, "
               f"per-token graph and sampling work, which weigh most on the smallest model ({load}).")
        lines.append(verdict(row["goal_met"], f"{row['model']} decodes at >= {config['goal_fraction']:.0%} of the "
                             f"bandwidth bound ({row['fraction_of_bound']:.0%})", why))
    short = [row["model"] for row in data["models"]
             if min(row.get("tokens_per_run", [config["tokens"]])) < config["tokens"]]
    if short:
        lines.append(f"\nSome runs of {', '.join(short)} reached the {config['run_deadline_s']:.0f} s deadline "
                     "before all their tokens; their rate is over the tokens they made.")
    if any(row["fits_in_llc"] for row in data["models"]):
        lines.append("\nA model whose per-token weights fit in the LLC is served from cache, not DRAM: its "
                     "fraction can pass 100%.")
    return lines


def render(results: Path, plots: Path) -> str:
    """Bandwidth facts, the per-model table and one goal verdict per model."""
    data = load(results / "bandwidth.json")
    if not data:
        return f"No results: `{SCRIPT}` did not write bandwidth.json."
    config = data["config"]
    return "\n".join([
        "Decoding one token reads every weight its forward pass uses plus the KV cache so far, so "
        "**bound tok/s = memory bandwidth / bytes per token**. Bandwidth: a STREAM-style triad "
        "`a = b + s*c` on float64 arrays, block-wise with `out=` (no temporaries), counted as STREAM "
        "does (3 arrays x 8 bytes per element; the write-allocate read of `a` is not counted), best of "
        f"{data['bandwidth']['repetitions']} passes.",
        "",
        bandwidth_table(data),
        "",
        "Bytes per token: every tensor but the token embedding (all layers, norms, the output head); with "
        "tied embeddings the output head reads the whole embedding matrix, and the input lookup one row of "
        f"it; plus the KV cache (f16) at the mean position of the {config['tokens']} decoded tokens. "
        f"Measured: `Llama.generate`, greedy, end-of-generation tokens banned, median of {config['runs']} "
        f"run(s); the goal is judged on the {config['threads']}-thread rate.",
        "",
        model_table(data),
        "",
        *notes(data),
    ])
