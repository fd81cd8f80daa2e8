"""CIM: Monte-Carlo chips/s of cim_backend against IBM aihwkit, how the cost grows with chips,
and the CIM engine's decoding speed.

Reads ``cim_chips_per_second.json`` from ``benchmarks/cim/bench_chips_per_second.py``: both tools
simulate the same LeNet with the same programming noise on the same 360 test images, in one run;
and ``cim_engine.json`` from ``benchmarks/cim/bench_cim_engine.py`` (the full run only: it
programs two SmolLM2 chips).
"""
from __future__ import annotations

from pathlib import Path

from benchmarks.report.common import figure, finish, load, loglog_fit, table

TITLE = "CIM"
SCRIPT = "benchmarks/cim/bench_chips_per_second.py"
RESULT = "cim_chips_per_second.json"
ENGINE_SCRIPT = "benchmarks/cim/bench_cim_engine.py"
ENGINE_RESULT = "cim_engine.json"
ROWS = (("cim_backend", "cim_backend (vectorised)"),
        ("cim_backend_read_noise", "cim_backend, read noise on"),
        ("aihwkit", "aihwkit (one chip at a time)"))


def commands(quick: bool, results: Path) -> list[list[str]]:
    """The chips/s benchmark (--quick, or the script's defaults with 5 repeats); in the full
    run also the CIM engine's decoding speed, with the script's defaults."""
    mode = ["--quick"] if quick else ["--repeats", "5"]
    engine = [] if quick else [[ENGINE_SCRIPT, "--out", str(results / ENGINE_RESULT)]]
    return [[SCRIPT, *mode, "--out", str(results / RESULT)], *engine]


def engine_speed(results: Path) -> str:
    """Decode tokens/s of the CIM engine's variants against llama.cpp on the same prompt."""
    data = load(results / ENGINE_RESULT)
    if not data:
        return (f"CIM engine tokens/s: n/a: measured by the full run only (`python {ENGINE_SCRIPT}` programs "
                "two SmolLM2 chips, minutes of work).")
    rows = [[name, r["decode_tokens_per_s"], r["ratio_to_llama_cpp"], r["program_s"]]
            for name, r in data["results"].items()]
    return "\n\n".join([
        f"The CIM engine decoding SmolLM2-135M: {data['tokens']} greedy tokens, median of {data['repeats']}, "
        f"{data['threads']} threads, interleaved. `cim`: every projection on one simulated chip (RRAM, 4-bit "
        "weights with per-channel scales, 8-bit DAC, output-referred read noise, ideal ADC); `cim-adc`: the "
        "same with a 6-bit ADC on the tiled path; `digital`: the same torch model without a chip; `llama.cpp`: "
        "the served GGUF as the product runs it. Programming a chip is timed once.",
        table(["engine", "decode tok/s", "x llama.cpp", "programming s"], rows)])


def _why_no_aihwkit(data: dict) -> str:
    aihwkit = data.get("aihwkit") or {}
    return aihwkit.get("reason") or "aihwkit was not measured"


def _cpu_ratio(data: dict) -> str:
    """The ratio in CPU time, which other processes on shared cores disturb less than wall time."""
    cim, aihwkit = data.get("cim_backend") or {}, data.get("aihwkit") or {}
    if not (cim.get("median_cpu_seconds") and aihwkit.get("median_cpu_seconds")):
        return ""
    ratio = (cim["chips"] / cim["median_cpu_seconds"]) / (aihwkit["chips"] / aihwkit["median_cpu_seconds"])
    return f" ({ratio:.2f}x in chips per CPU-second)"


def _rate_rows(data: dict) -> list[list[object]]:
    """Tool, chips, seconds, chips/s, ratio to aihwkit (same run), chips per CPU-second, mean accuracy."""
    base = (data.get("aihwkit") or {}).get("chips_per_second")
    rows = []
    for key, label in ROWS:
        r = data.get(key) or {}
        if not r.get("chips_per_second"):
            why = f"n/a: {r.get('reason') or 'not measured'}"
            rows.append([label] + [why] * 6)
            continue
        ratio = r["chips_per_second"] / base if base else f"n/a: {_why_no_aihwkit(data)}"
        cpu = r.get("median_cpu_seconds")
        rows.append([label, r["chips"], float(r["median_seconds"]), float(r["chips_per_second"]),
                     float(ratio) if isinstance(ratio, float) else ratio,
                     r["chips"] / cpu if cpu else "n/a: CPU time not recorded", float(r["mean_accuracy"])])
    return rows


def _scaling(data: dict, plots: Path) -> str:
    """Seconds vs chips per tool: a table of fitted exponents and the log-log plot."""
    sweeps = {tool: rows for tool, rows in (data.get("sweep") or {}).items() if len(rows) >= 2}
    if not sweeps:
        return "Scaling: n/a: the run recorded fewer than two chip counts per tool."
    fig, ax = figure()
    fit_rows = []
    for tool, rows in sweeps.items():
        chips = [r["chips"] for r in rows]
        seconds = [r["median_seconds"] for r in rows]
        a, b = loglog_fit(chips, seconds)
        ax.loglog(chips, seconds, "o", label=f"{tool} (exponent {b:.2f})")
        span = [min(chips), max(chips)]
        ax.loglog(span, [a * c**b for c in span], "--", color=ax.lines[-1].get_color())
        fit_rows.append([tool, ", ".join(str(c) for c in chips), float(b), float(a), float(seconds[-1] / chips[-1])])
    if "aihwkit" not in sweeps:
        fit_rows.append(["aihwkit"] + [f"n/a: {_why_no_aihwkit(data)}"] * 4)
    link = finish(fig, ax, plots, "cim_scaling", "chips (programming-noise realisations)",
                  "seconds (program + evaluate 360 images)", "CIM Monte Carlo: cost vs chips")
    return "\n\n".join([
        "Scaling: seconds = a * chips^b, least squares on log-log (b = 1: linear in chips; b < 1: "
        "fixed costs amortised over the batch).",
        table(["tool", "chip counts", "exponent b", "a (s)", "s/chip at largest count"], fit_rows),
        link,
    ])


def render(results: Path, plots: Path) -> str:
    """The CIM section: chips/s against aihwkit, CIM engine tokens/s, scaling with chips."""
    data = load(results / RESULT)
    if not data:
        return f"n/a: the CIM benchmark did not run (no {RESULT}; `python {SCRIPT}` writes it)."
    m = data.get("machine") or {}
    ratio = data.get("speedup_vs_aihwkit")
    headline = (f"cim_backend is **{ratio:.2f}x** aihwkit's chips/s in the same run{_cpu_ratio(data)}."
                if ratio else f"Ratio vs aihwkit: n/a: {_why_no_aihwkit(data)}.")
    version = (data.get("aihwkit") or {}).get("version")
    work = data.get("workload") or {}
    return "\n\n".join([
        f"Same network, same noise, same test images for both tools: {work.get('network', 'LeNet digits')}, "
        f"{work.get('test_images', 'n/a: not recorded')} test images, {work.get('noise', 'programming noise only')}. "
        f"A chip is one programming-noise draw plus a full test-set evaluation. "
        f"{data.get('threads', 'n/a: not recorded')} torch thread(s); {m.get('cpu', 'CPU n/a: not recorded')}, {m.get('cores', 'n/a: not recorded')} cores"
        f"{'; aihwkit ' + version if version else ''}; repeats {data.get('repeats', 'n/a: not recorded')} (median)"
        f"{'; quick mode' if data.get('quick') else ''}.",
        table(["tool", "chips", "seconds (median)", "chips/s", "ratio vs aihwkit", "chips per CPU-second",
               "mean accuracy"], _rate_rows(data)),
        headline,
        engine_speed(results),
        _scaling(data, plots),
    ])
