"""Section: resident memory of `assistant serve` per profile, idle, after a RAG answer, under
load and with a large index; and of the peers on the same model."""
from __future__ import annotations

from pathlib import Path

from benchmarks.report.common import figure, load, save, table, verdict

TITLE = "Memory"
GOAL_MB = 300


def commands(quick: bool, results: Path) -> list[list[str]]:
    """The KV-cache benchmark (memory per profile) and the load benchmark (memory under load)."""
    load_args = ["--quick"] if quick else ["--requests", "300", "--concurrency", "16"]
    return [["benchmarks/bench_kv_cache.py", *(["--quick"] if quick else []), "--out", str(results / "kv_cache.json")],
            ["benchmarks/load.py", *load_args, "--out", str(results / "load.json")]]


def _profiles(kv: dict, plots: Path) -> list[str]:
    rows = kv.get("memory", [])
    if not rows:
        return ["n/a: the KV-cache benchmark did not run."]
    out = [table(["profile", "KV cache", "context", "allocated after the answer", "idle RSS MB",
                  "peak RSS MB after a RAG answer", "default"],
                 [[r["profile"], r["kv_cache_type"], r["n_ctx"], _allocated(r), r.get("idle_rss_mb", "n/a: not measured"),
                   r["peak_mb"], "yes" if r["profile_default"] else "no"] for r in rows])]
    defaults = [r for r in rows if r["profile_default"]]
    worst = max(defaults, key=lambda r: r["peak_mb"])
    over = [r["profile"] for r in defaults if r["peak_mb"] >= GOAL_MB]
    out += ["", verdict(not over, f"every profile's default under {GOAL_MB} MB peak resident with the default "
                                  f"model after a RAG answer (worst: {worst['profile']}, {worst['peak_mb']} MB)",
                        f"Over: {', '.join(over)}.")]
    fig, ax = figure()
    ax.barh([f"{r['profile']} ({r['kv_cache_type']}{', whole context' if r.get('whole_context_at_load') else ''})"
             for r in rows], [r["peak_mb"] for r in rows])
    ax.axvline(GOAL_MB, color="red", linestyle="--", label=f"goal {GOAL_MB} MB")
    ax.set_xlabel("peak resident MB after one RAG answer")
    ax.legend()
    ax.tick_params(axis="y", labelsize=7)
    out += ["", save(fig, plots, "memory_profiles")]
    return out


def _allocated(row: dict) -> str:
    """The context held after the answer, and whether it was all allocated at load."""
    if "n_ctx_allocated" not in row:
        return "n/a: not measured"
    return f"{row['n_ctx_allocated']} (whole at load)" if row.get("whole_context_at_load") else str(row["n_ctx_allocated"])


def _growth(kv: dict) -> list[str]:
    growth = kv.get("growth")
    if not growth:
        return ["- Growing the context: n/a: measured in the full run only."]
    return [f"- Growing the context (a {growth['follow_up_chars']:,}-character follow-up that outgrows the first "
            f"2,048 tokens, {growth['repeats']} runs, medians): the copy {growth['median_growth_s']:.3f} s; the "
            f"follow-up took {growth['median_grown_s']:.2f} s with a grown context, "
            f"{growth['median_whole_s']:.2f} s with the whole context allocated at load."]


def _speed(kv: dict) -> list[str]:
    speed = kv.get("speed")
    if not speed:
        return ["- What q8_0 costs in time: n/a: measured in the full run only."]
    parts = [f"{speed['prompt_tokens'][p]:,}-token prompt: time to first "
             f"token {speed[f'q8_0_{p}_median_ttft_s']:.1f} s with q8_0 vs {speed[f'f16_{p}_median_ttft_s']:.1f} s with "
             f"f16 ({speed[f'q8_0_{p}_median_ttft_s'] / speed[f'f16_{p}_median_ttft_s']:.2f}x), decode "
             f"{speed[f'q8_0_{p}_median_decode_tps']:.0f} vs {speed[f'f16_{p}_median_decode_tps']:.0f} tokens/s"
             for p in ("short", "long")]
    return [f"- What q8_0 costs in time ({speed['repeats']} runs, medians): " + "; ".join(parts) + "."]


def _load(report: dict) -> list[str]:
    if not report:
        return ["- Under load: n/a: the load benchmark did not run."]
    return [f"- Under load ({report['requests']} requests at concurrency {report.get('concurrency', 'n/a: not recorded')}, "
            f"a share leaving mid-stream): resident {report['rss_first_quarter_mb']:.0f} MB in the first quarter, "
            f"{report['rss_last_quarter_mb']:.0f} MB in the last (growth {100 * report['rss_growth']:.1f}%)."]


def _peers(serving: dict) -> list[str]:
    lines = []
    for model, data in serving.get("models", {}).items():
        memory = data.get("memory", {})
        lines.append(f"- {model}, after the generation benchmark: " + ", ".join(
            f"{name} {m['peak_rss_mb']:.0f} MB peak / {m['rss_mb']:.0f} MB now" for name, m in memory.items()))
    return lines or ["- Peers: n/a: the serving benchmark did not run."]


def _index(index: dict) -> list[str]:
    serve = index.get("serve") if index else None
    if not serve:
        return ["- With a large index: n/a: not measured in this run."]
    return [f"- With a {serve['index_chunks']:,}-chunk index, after one RAG answer: peak {serve['vm_hwm_mb']:.0f} MB, "
            f"resident {serve['vm_rss_mb']:.0f} MB (the Retrieval section has the details)."]


def render(results: Path, plots: Path) -> str:
    """Profiles table with the goal verdict, then load, peers and large-index lines."""
    kv = load(results / "kv_cache.json")
    parts = ["Peak resident memory is VmHWM of the server process; file-backed model pages count.", ""]
    parts += _profiles(kv, plots)
    parts += ["", *_growth(kv), *_speed(kv), *_load(load(results / "load.json")), *_peers(load(results / "serving.json")),
              *_index(load(results / "knowledge_index.json"))]
    return "\n".join(parts)
