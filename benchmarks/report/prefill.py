"""Prompt processing: prefill tokens/s per batch size, time to first token of a RAG question
before and after prefix reuse, and prefill time against prompt length.

Reads ``prefill.json`` from ``benchmarks/bench_prefill.py``.
"""
from __future__ import annotations

from pathlib import Path

from benchmarks.report.common import figure, finish, load, load_note, loglog_fit, table, verdict

TITLE = "Prompt processing"
SCRIPT = "benchmarks/bench_prefill.py"
RESULT = "prefill.json"
CASES = {"cold": "cold (first question)", "warm": "warm (2nd question, same passages)",
         "adapter_round_trip": "after adapter on -> off -> on"}


def commands(quick: bool, results: Path) -> list[list[str]]:
    """One run: the batch-size sweep, TTFT before/after and the prompt-length sweep."""
    return [[SCRIPT, *(["--quick"] if quick else []), "--out", str(results / RESULT)]]


def _sweep(models: dict) -> str:
    measured = {name: m["sweep"] for name, m in models.items() if m.get("sweep")}
    if not measured:
        return "Batch sizes: n/a: the run skipped the sweep."
    batches = sorted({row["n_batch"] for rows in measured.values() for row in rows})
    by_batch = {(name, row["n_batch"]): row for name, rows in measured.items() for row in rows}
    nan = {"tokens_per_s": float("nan"), "tokens_per_cpu_s": float("nan")}
    rows = [[n_batch, *[by_batch.get((name, n_batch), nan)[key] for name in measured
                        for key in ("tokens_per_s", "tokens_per_cpu_s")]] for n_batch in batches]
    prompts = ", ".join(f"{name} {models[name]['rag_prompt_tokens']}" for name in measured)
    return (f"Prefill of the RAG prompt ({prompts} tokens) from an empty cache, n_ubatch = n_batch, batch sizes "
            "measured round-robin; tok/s by the wall clock and per CPU second of the process (what the work "
            "costs on an unshared core):\n\n"
            + table(["n_batch", *[f"{name} {unit}" for name in measured for unit in ("tok/s", "tok/CPU s")]], rows))


def _ttft(models: dict) -> tuple[str, list[str]]:
    rows, verdicts = [], []
    for name, m in models.items():
        if "ttft" not in m:
            continue
        before, after = m["ttft"]["before"], m["ttft"]["after"]
        for case, label in CASES.items():
            if case not in after:
                continue
            b, a = before[case], after[case]
            rows.append([name, label, int(a["prompt_tokens"]), int(a["cached_tokens"]), b["ttft_s"], a["ttft_s"],
                         f"{b['ttft_s'] / a['ttft_s']:.2f}x", b["cpu_to_first_event_s"], a["cpu_to_first_event_s"],
                         "yes" if b["text"] == a["text"] else "no"])
        same = m["ttft"]["same_text_before_after"]
        verdicts.append(verdict(same, f"{name}: a seeded RAG question gives the same text with and without prefix "
                                      "reuse", "The reuse point or a restored prefix changed the logits."))
    if not rows:
        return "Time to first token: n/a: the run skipped it.", []
    body = table(["model", "request", "prompt tokens", "cached", "TTFT before (s)", "TTFT after (s)", "speed-up",
                  "CPU s before", "CPU s after", "same text"], rows)
    return body, verdicts


def _scaling(models: dict, plots: Path) -> str:
    fig, ax = figure()
    fits = []
    for name, m in models.items():
        # CPU seconds: on a shared machine the wall clock measures the other jobs too
        points = [(row["prompt_tokens"], row.get("cpu_seconds", row["seconds"])) for row in m.get("scaling", [])]
        if len(points) < 2:
            continue
        lengths, seconds = [p[0] for p in points], [p[1] for p in points]
        a, b = loglog_fit(lengths, seconds)
        fits.append(f"{name} ~ tokens^{b:.2f}")
        ax.loglog(lengths, seconds, "o-", label=f"{name} (exponent {b:.2f})")
    if not fits:
        return "Scaling: n/a: fewer than two prompt lengths were measured."
    link = finish(fig, ax, plots, "prefill_scaling", "prompt tokens", "prefill CPU time, s (cold cache)",
                  "Prefill time vs prompt length")
    return (f"Prefill CPU time grows as {', '.join(fits)} (least squares on log-log over prompts of "
            f"{min(lengths)}-{max(lengths)} tokens; 1.0 is linear in the prompt, above it attention's quadratic "
            "share shows, below it fixed costs per call weigh on the short prompts).\n\n" + link)


def render(results: Path, plots: Path) -> str:
    """The batch-size table, the TTFT table with its verdicts, the profiles' choice, scaling."""
    data = load(results / RESULT)
    if not data:
        return f"No results: `{SCRIPT}` did not write {RESULT}."
    config, models = data["config"], data["models"]
    loads = [config["load_average_before"][0], config.get("load_average_after", [float("nan")])[0]]
    ttft_table, verdicts = _ttft(models)
    chosen = ", ".join(f"{name} {n}" for name, n in config["profile_n_batch"].items())
    return "\n".join([
        f"{config['threads']} thread(s); {load_note(loads, config['cores'])}; best of {config['runs']} run(s)"
        f"{' (quick mode)' if config['quick'] else ''}.",
        "",
        _sweep(models),
        "",
        f"Profiles' batch sizes: {chosen}.",
        "",
        f"Time to first token through the `Engine` at n_batch {config['n_batch']}, seeded (temperature 1), "
        f"median of {config['runs']}; CPU s: the process's CPU time until the first text. Before: every prompt evaluated from an empty cache (`prefix_reuse=False`, "
        "what the engine did for seeded requests and after adapter switches). After: the cached prefix is reused "
        "from a batch-aligned point (fewer than n_batch shared tokens are evaluated again, so the prompt is "
        "evaluated in the same batches as cold and gives the same text), and kept per adapter across switches.",
        "",
        ttft_table,
        "",
        *verdicts,
        "",
        "### Scaling",
        "",
        _scaling(models, plots),
    ])
