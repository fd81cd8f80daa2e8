"""Section: generation through `assistant serve` against direct llama-cpp-python and the peers."""
from __future__ import annotations

from pathlib import Path

from benchmarks.report.common import figure, load, save, table, verdict

TITLE = "Generation"
DECODE_GOAL, DECODE_FLOOR = 0.97, 0.95
TTFT_WHY = {
    "chat": "llama_cpp.server reuses every cached token its prompt shares with the one before; the "
            "engine reuses the template head and then whole batches only, so that a seeded answer is the "
            "same cold and warm (assistant/models/prefix_cache.py).",
    "rag": "Both evaluate the same prompt tokens from an empty cache; the rest is the server's own path.",
}


def commands(quick: bool, results: Path) -> list[list[str]]:
    """bench_serving: both catalog models, 5 interleaved rounds (quick: default model, 2 rounds)."""
    return [["benchmarks/bench_serving.py", *(["--quick"] if quick else []), "--out", str(results / "serving.json")]]


def _model_table(data: dict) -> str:
    chat, rag, memory = data["results"]["chat"], data["results"]["rag"], data.get("memory", {})
    rows = []
    for mode, row in chat.items():
        mem = memory.get(mode)
        where = "the same process as above" if "Ollama" in mode else "n/a: runs in the benchmark's process"
        rows.append([mode, row["decode_tps_median"], row["ttft_ms_median"], rag[mode]["ttft_ms_median"],
                     rag[mode]["prefill_tps_median"], mem["peak_rss_mb"] if mem else where,
                     row["runs"]])
    return table(["mode", "decode tok/s", "chat TTFT ms", "RAG TTFT ms", "RAG prefill tok/s", "peak RSS MB",
                  "runs"], rows)


def _ratio_lines(data: dict) -> list[str]:
    lines = []
    for name, ratio in data["ratios"].items():
        low, high = ratio["ci95"]
        what, peer = name.split("_vs_", 1)
        lines.append(f"- {what.replace('_', ' ')} vs {peer.replace('direct_generate', 'direct Llama.generate')}: **{ratio['median']:.3f}** (95% CI {low:.3f}-{high:.3f}, "
                     f"{len(ratio['per_round'])} rounds)")
    return lines


def _plot(report: dict, plots: Path) -> str:
    fig, ax = figure()
    models = list(report["models"])
    modes = list(report["models"][models[0]]["results"]["chat"])
    width = 0.8 / len(modes)
    for i, mode in enumerate(modes):
        values = [report["models"][m]["results"]["chat"].get(mode, {}).get("decode_tps_median", 0) for m in models]
        ax.bar([x + i * width for x in range(len(models))], values, width, label=mode)
    ax.set_xticks([x + 0.4 - width / 2 for x in range(len(models))], models)
    ax.set_ylabel("decode tokens/s (median)")
    ax.legend(fontsize=7)
    return save(fig, plots, "generation_decode")


def render(results: Path, plots: Path) -> str:
    """Per model: a table of every mode, the per-round ratios with intervals, goal verdicts."""
    report = load(results / "serving.json")
    if not report.get("models"):
        return "n/a: the serving benchmark did not run (see below)."
    config = report["config"]
    parts = [f"Greedy, end-of-generation banned, {config['tokens']} tokens per chat prompt ({config['prompts']} "
             f"prompts), a RAG prompt with {config['rag_tokens']} tokens generated; {config['rounds']} interleaved "
             f"rounds (the RAG prompt in {config.get('rag_rounds', config['rounds'])} of them), {config['threads']} threads, context {config['n_ctx']}, f16 KV cache and batch 512 on every side "
             "(the peers' defaults; the profiles' q8_0 KV and batch 128 are measured in the next sections). Decode rate = completion tokens / "
             "(last content byte - first); TTFT = request start to first content byte; prefill = prompt tokens "
             "/ TTFT. The Ollama-API row cannot ban end-of-generation tokens, so its answers may be shorter. "
             "Ollama itself is not a peer: it cannot be installed offline here."]
    for model, data in report["models"].items():
        attention = ([f"Flash attention {'on' if data['flash_attention'] else 'off'} in every mode and peer (the "
                      "catalog's choice for this model; `benchmarks/bench_flash_attention.py`).", ""]
                     if "flash_attention" in data else [])
        parts += ["", f"### {model}", "", *attention, _model_table(data), "", *_ratio_lines(data)]
        decode = data["ratios"]["decode_vs_direct_generate"]
        parts += ["", verdict(decode["median"] >= DECODE_GOAL and decode["ci95"][0] >= DECODE_FLOOR,
                              f"decode >= {DECODE_GOAL}x direct `Llama.generate` with the CI lower bound >= "
                              f"{DECODE_FLOOR} (measured {decode['median']:.3f}, CI lower "
                              f"{decode['ci95'][0]:.3f})",
                              "The server streams the same llama-cpp-python token loop; the rest is the HTTP "
                              "and event-loop hop per batch of tokens.")]
        for workload, prompt in (("chat", "chat-prompt"), ("rag", "RAG-prompt")):
            ttft = data["ratios"].get(f"{workload}_ttft_vs_llama_cpp.server")
            if ttft:
                parts.append(verdict(ttft["median"] <= 1.0, f"{prompt} TTFT no worse than llama_cpp.server's "
                                                           f"(ratio {ttft['median']:.3f})", TTFT_WHY[workload]))
        parts.append(f"- llama.cpp's C++ server: {data.get('cpp_server', 'n/a: not recorded')}")
    parts += ["", _plot(report, plots)]
    return "\n".join(parts)
