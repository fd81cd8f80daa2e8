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
    out = [table(["profile", "KV cache", "context", "idle RSS MB", "peak RSS MB after a RAG answer", "default"],
                 [[r["profile"], r["kv_cache_type"], r["n_ctx"], r.get("idle_rss_mb", "n/a: not measured"),
                   r["peak_mb"], "yes" if r["profile_default"] else "no"] for r in rows])]
    defaults = [r for r in rows if r["profile_default"]]
    worst = max(defaults, key=lambda r: r["peak_mb"])
    over = [r["profile"] for r in defaults if r["peak_mb"] >= GOAL_MB]
    out += ["", verdict(not over, f"every profile's default under {GOAL_MB} MB peak resident with the default "
                                  f"model after a RAG answer (worst: {worst['profile']}, {worst['peak_mb']} MB)",
                        f"Over: {', '.join(over)}.")]
    fig, ax = figure()
    ax.barh([f"{r['profile']} ({r['kv_cache_type']})" for r in rows], [r["peak_mb"] for r in rows])
    ax.axvline(GOAL_MB, color="red", linestyle="--", label=f"goal {GOAL_MB} MB")
    ax.set_xlabel("peak resident MB after one RAG answer")
    ax.legend()
    ax.tick_params(axis="y", labelsize=7)
    out += ["", save(fig, plots, "memory_profiles")]
    return out


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
    parts += ["", *_load(load(results / "load.json")), *_peers(load(results / "serving.json")),
              *_index(load(results / "knowledge_index.json"))]
    return "\n".join(parts)
