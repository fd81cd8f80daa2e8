"""The reproduction's outputs: ``results.json``, ``report.md`` and three PNG plots per network."""

from __future__ import annotations

import json
import math
from pathlib import Path

LABELS = {
    "plain": "(a) plain training",
    "noise_injection": "(b) noise injection (NI)",
    "tsb": "(d) TSB",
    "tsb_bias_only": "TSB ablation: A = 0 (block biases only)",
    "tsb_shared": "TSB ablation: one block for all chips",
    "bias": "per-chip fit of digital biases (no write-verify)",
    "last_layer": "per-chip refit of the last layer (no write-verify)",
}
SWEEP_METHODS = ("plain", "noise_injection", "swv@1x", "swv@all", "tsb")
DRIFT_METHODS = ("plain", "noise_injection", "swv@1x", "swv@all", "tsb", "bias")


def label(name: str) -> str:
    """Readable name of a method key."""
    if name.startswith("swv@"):
        return f"(c) NI + selective write-verify, {name[4:]} {'weights' if name == 'swv@all' else 'TSB budget'}"
    if name.startswith("tsb_k"):
        return f"TSB with width k = {name[5:]}"
    return LABELS.get(name, name)


def _pct(x: float) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.2f}"


def _ci(ci) -> str:
    return f"[{_pct(ci[0])}, {_pct(ci[1])}]"


def _order(names) -> list[str]:
    def key(n: str):
        if n.startswith("swv@"):
            return (2, math.inf if n == "swv@all" else int(n[4:-1]))
        rank = {"plain": 0, "noise_injection": 1, "tsb": 3}.get(n, 4)
        return (rank, n)
    return sorted(names, key=key)


def main_table(block: dict) -> str:
    """One row per method at one sigma."""
    rows = [
        "| method | accuracy % [95% CI] | gap to common reference, points [95% CI] | gap to own digital model | "
        "verified weights (share) | mapping time ms / energy uJ (read-back incl.) | one-off training s | per-chip fit s | minus TSB, points [95% CI] |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    vs = block.get("vs_tsb", {})
    for name in _order(block["methods"]):
        m = block["methods"][name]
        d = vs.get(name)
        diff = "-" if d is None else f"{100 * d['difference']:+.2f} {_ci(d['ci'])}{' tie' if d['tie'] else ''}"
        rows.append(
            f"| {label(name)} | {_pct(m['accuracy'])} {_ci(m['ci'])} | {100 * m['gap']:+.2f} {_ci(m['gap_ci'])} | "
            f"{100 * m['own_gap']:+.2f} | {m['verified_weights']:.0f} ({100 * m['verified_fraction']:.3f}%) | "
            f"{1e3 * m['mapping_time_s']:.2f} / {m['mapping_energy_uj']:.3f} | {m['train_seconds']:.1f} | "
            f"{m['per_chip_fit_seconds']:.2f} | {diff} |"
        )
    return "\n".join(rows) + "\n"


def sweep_table(net: dict) -> str:
    """Accuracy per method at every sigma."""
    sigmas = sorted(net["sigmas"], key=float)
    names = [n for n in SWEEP_METHODS if all(n in net["sigmas"][s]["methods"] for s in sigmas)]
    rows = ["| sigma | " + " | ".join(label(n) for n in names) + " | gap ratio NI / TSB [95% CI] |", "|---" * (len(names) + 2) + "|"]
    for s in sigmas:
        b = net["sigmas"][s]
        cells = " | ".join(f"{_pct(b['methods'][n]['accuracy'])} {_ci(b['methods'][n]['ci'])}" for n in names)
        r = b.get("gap_ratio_ni_over_tsb", {})
        ratio = "n/a" if not r else f"{r['point']:.2f} [{r['ci'][0]:.2f}, {r['ci'][1]:.2f}]"
        rows.append(f"| {s} | {cells} | {ratio} |")
    return "\n".join(rows) + "\n"


def drift_table(block: dict, times: list[str]) -> str:
    """Accuracy at t0 and after each drift time, per method."""
    head = "| method | t0 | " + " | ".join(_time(t) for t in times) + " |"
    rows = [head, "|---" * (len(times) + 2) + "|"]
    for name in DRIFT_METHODS:
        m = block["methods"].get(name)
        if not m or "drift" not in m:
            continue
        cells = " | ".join(f"{_pct(m['drift'][t]['accuracy'])} {_ci(m['drift'][t]['ci'])}" for t in times)
        rows.append(f"| {label(name)} | {_pct(m['accuracy'])} {_ci(m['ci'])} | {cells} |")
    return "\n".join(rows) + "\n"


def _time(t: str) -> str:
    s = float(t)
    return f"{s / 86400:.0f} day(s)" if s >= 86400 else f"{s:.0f} s"


def fleet_table(block: dict) -> str:
    """Total seconds (training once + per chip fitting, programming and read-back) for N chips."""
    names = [n for n in ("noise_injection", "swv@1x", "swv@all", "tsb", "bias", "last_layer") if n in block["methods"]]
    sizes = list(block["methods"][names[0]]["fleet_seconds"])
    rows = ["| method | " + " | ".join(f"{int(n):,} chip(s), s" for n in sizes) + " |", "|---" * (len(sizes) + 1) + "|"]
    for n in names:
        f = block["methods"][n]["fleet_seconds"]
        rows.append(f"| {label(n)} | " + " | ".join(f"{f[k]:.1f}" for k in sizes) + " |")
    return "\n".join(rows) + "\n"


def goals_table(goals: list[dict]) -> str:
    """The issue's goals: what was asked, what was measured, met or not."""
    verdict = {True: "met", False: "**missed**", None: "not evaluated"}
    rows = ["| goal | measured | verdict |", "|---|---|---|"]
    rows += [f"| {g['goal']} | {g['measured']} | {verdict[g['met']]} |" for g in goals]
    return "\n".join(rows) + "\n"


def crossing_line(block: dict) -> str:
    """Where selective write-verify reaches TSB's accuracy."""
    c = block.get("swv_crossing", {})
    status = c.get("status", "not run")
    if status == "crosses":
        return f"Selective write-verify reaches TSB's mean accuracy at about {c['weights']:.0f} verified weights ({c['multiple']:.1f}x TSB's), interpolated on a log scale between the measured budgets."
    return f"Selective write-verify against TSB's mean accuracy: {status}."


def ratio_line(block: dict) -> str:
    """The gap ratio with the claim rule applied."""
    r = block.get("gap_ratio_ni_over_tsb")
    if not r:
        return ""
    lo = r["ci"][0]
    claim = (f"TSB's gap is smaller than NI's; the largest 'N x smaller' claim the interval supports is N = {lo:.2f}"
             if lo > 1 else "TSB's gap is not shown smaller than NI's (the interval's lower bound is <= 1)")
    return f"Gap ratio NI / TSB: {r['point']:.2f} (95% CI {r['ci'][0]:.2f} to {r['ci'][1]:.2f}); {claim}."


def render(results: dict) -> str:
    """The whole ``report.md``."""
    s = results["settings"]
    lines = [
        "# TSB reproduction (cross-fitted, with intervals)\n",
        f"Command: `{results['meta']['command']}`; {results['meta']['wall_seconds'] / 60:.1f} min on {results['meta']['cpu']}, "
        f"{results['meta']['threads']} torch thread(s); quick run: {results['meta']['quick']}.\n",
        f"Chip: `{s['config']}`.\n",
        f"Folds: {s['fold_limit'] or s['folds']} of {s['folds']} (every image tested once when all run); {s['chips']} test chips per fold, "
        f"{s['val_chips']} validation chips; every choice (epochs, TSB backbone, width k, fitting steps, write-verify selection) "
        "made on a validation split of each training fold. Accuracies: mean over chips and test images, 95% paired bootstrap "
        "over chips x images within folds. Gaps: against one common reference, the digital model trained without chips.\n",
    ]
    for network, net in results["networks"].items():
        main = str(s["main_sigma"]) if str(s["main_sigma"]) in net["sigmas"] else sorted(net["sigmas"])[0]
        block = net["sigmas"][main]
        ref = block["reference"]
        lines += [
            f"\n## {network} ({net['weights']:,} crossbar weights)\n",
            f"Common reference (digital): {_pct(ref['accuracy'])}% {_ci(ref['ci'])}. "
            f"Folds computed in {sum(net['fold_seconds']) / 60:.1f} min (sum over folds; a rerun reuses finished folds).\n",
            f"\n### sigma = {main}\n\n", main_table(block), "\n", ratio_line(block) + "\n\n", crossing_line(block) + "\n",
        ]
        if len(net["sigmas"]) > 1:
            lines += ["\n### Accuracy against sigma\n\n", sweep_table(net)]
        times = list(next((m["drift"] for m in block["methods"].values() if "drift" in m), {}))
        if times:
            lines += ["\n### After programming: drift (no recalibration)\n\n", drift_table(block, times)]
        lines += ["\n### Fleet cost\n\n", "Seconds for N chips: training once, then per chip the fitting, programming and read-back "
                  "(per-chip fit times measured with one torch thread per fold).\n\n", fleet_table(block)]
        if net.get("goals"):
            lines += ["\n### Goals\n\n", "A tie: the paired difference's 95% interval contains 0; 'N x': the ratio's "
                      "interval lower bound is >= N.\n\n", goals_table(net["goals"])]
        t = net.get("adc_timing")
        if t:
            lines.append(
                f"\nADC path: {t['adc_seconds']:.2f} s for {t['chips']} chips x {t['images']} images with the tiled {s['adc_bits']}-bit ADC "
                f"path, {t['fast_seconds']:.2f} s on the fast path ({t['ratio']:.1f}x).\n"
            )
    return "".join(lines)


def _plot_sweep(plt, net: dict, ax) -> None:
    sigmas = sorted(net["sigmas"], key=float)
    for name in SWEEP_METHODS:
        pts = [(float(s), net["sigmas"][s]["methods"][name]) for s in sigmas if name in net["sigmas"][s]["methods"]]
        if not pts:
            continue
        x = [p[0] for p in pts]
        ax.plot(x, [p[1]["accuracy"] for p in pts], marker="o", label=label(name))
        ax.fill_between(x, [p[1]["ci"][0] for p in pts], [p[1]["ci"][1] for p in pts], alpha=0.2)
    ax.set_xlabel("device variation sigma (fraction of conductance range)")
    ax.set_ylabel("accuracy over chips")


def _plot_budget(plt, block: dict, ax) -> None:
    swv = sorted((m["verified_weights"], m) for n, m in block["methods"].items() if n.startswith("swv@"))
    x = [w for w, _ in swv]
    ax.plot(x, [m["accuracy"] for _, m in swv], marker="o", label="NI + selective write-verify")
    ax.fill_between(x, [m["ci"][0] for _, m in swv], [m["ci"][1] for _, m in swv], alpha=0.2)
    tsb = block["methods"]["tsb"]
    ax.axhline(tsb["accuracy"], color="C3", label=f"TSB ({tsb['verified_weights']:.0f} verified)")
    ax.axhspan(tsb["ci"][0], tsb["ci"][1], color="C3", alpha=0.15)
    ax.set_xscale("log")
    ax.set_xlabel("write-verified weights per chip")
    ax.set_ylabel("accuracy over chips")


def _plot_drift(plt, block: dict, ax) -> None:
    for name in DRIFT_METHODS:
        m = block["methods"].get(name)
        if not m or "drift" not in m:
            continue
        times = sorted(m["drift"], key=float)
        x = [1.0] + [float(t) for t in times]
        acc = [m["accuracy"]] + [m["drift"][t]["accuracy"] for t in times]
        lo = [m["ci"][0]] + [m["drift"][t]["ci"][0] for t in times]
        hi = [m["ci"][1]] + [m["drift"][t]["ci"][1] for t in times]
        ax.plot(x, acc, marker="o", label=label(name))
        ax.fill_between(x, lo, hi, alpha=0.15)
    ax.set_xscale("log")
    ax.set_xlabel("seconds after programming (t0 plotted at 1 s)")
    ax.set_ylabel("accuracy over chips")


def write_plots(out: Path, results: dict) -> list[Path]:
    """``accuracy_vs_sigma.png``, ``accuracy_vs_budget.png``, ``accuracy_vs_time.png`` (one panel per network)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    main = str(results["settings"]["main_sigma"])
    nets = results["networks"]
    paths = []
    for fname, draw, needs in (
        ("accuracy_vs_sigma.png", lambda n, ax: _plot_sweep(plt, nets[n], ax), lambda n: True),
        ("accuracy_vs_budget.png", lambda n, ax: _plot_budget(plt, _main(nets[n], main), ax), lambda n: "tsb" in _main(nets[n], main)["methods"]),
        ("accuracy_vs_time.png", lambda n, ax: _plot_drift(plt, _main(nets[n], main), ax),
         lambda n: any("drift" in m for m in _main(nets[n], main)["methods"].values())),
    ):
        names = [n for n in nets if needs(n)]
        if not names:
            continue
        fig, axes = plt.subplots(1, len(names), figsize=(6.4 * len(names), 4.4), squeeze=False)
        for ax, n in zip(axes[0], names):
            draw(n, ax)
            ax.set_title(n)
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(out / fname, dpi=110)
        plt.close(fig)
        paths.append(out / fname)
    return paths


def _main(net: dict, main: str) -> dict:
    return net["sigmas"][main] if main in net["sigmas"] else net["sigmas"][sorted(net["sigmas"])[0]]


def write_report(out: Path, results: dict) -> None:
    """Write ``results.json``, ``report.md`` and the plots into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=2, default=_jsonable))
    (out / "report.md").write_text(render(results))
    write_plots(out, results)


def _jsonable(value):
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)
