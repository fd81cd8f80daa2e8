"""Reproduction outputs: ``results.json``, a markdown table and the accuracy-vs-sigma plot."""

from __future__ import annotations

import json
from pathlib import Path

from .experiment import MethodResult

METHODS = ("plain", "noise_injection", "selective_wv", "tsb")
LABELS = {
    "plain": "(a) plain training",
    "noise_injection": "(b) noise-injection training",
    "selective_wv": "(c) NI + selective write-verify",
    "tsb": "(d) TSB",
}


def headline(main: dict[str, MethodResult], chips: int) -> dict:
    """The keys the issue asks for, from the results at the main sigma."""
    tsb, ni = main["tsb"], main["noise_injection"]
    return {
        "gap_plain": main["plain"].gap,
        "gap_noise_injection": ni.gap,
        "gap_selective_wv": main["selective_wv"].gap,
        "gap_tsb": tsb.gap,
        "verified_fraction_tsb": tsb.verified_fraction,
        "verified_fraction_selective_wv": main["selective_wv"].verified_fraction,
        "train_seconds_noise_injection": ni.train_seconds,
        "train_seconds_tsb": tsb.train_seconds,
        "chips": chips,
        "gap_ratio_ni_over_tsb": ni.gap / tsb.gap if tsb.gap > 0 else float("inf"),
        "train_speedup_tsb": ni.train_seconds / tsb.train_seconds if tsb.train_seconds > 0 else float("inf"),
        "train_cpu_seconds_noise_injection": ni.train_cpu_seconds,
        "train_cpu_seconds_tsb": tsb.train_cpu_seconds,
        "train_cpu_speedup_tsb": ni.train_cpu_seconds / tsb.train_cpu_seconds if tsb.train_cpu_seconds > 0 else float("inf"),
    }


def markdown_table(main: dict[str, MethodResult]) -> str:
    """One row per method at the main sigma."""
    rows = [
        "| method | ideal-chip acc | chip acc mean | chip acc std | gap | weights verified | train s (CPU s) | pulses/chip | program time s | program energy uJ |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name in METHODS:
        r = main[name]
        rows.append(
            f"| {LABELS[name]} | {r.digital_accuracy:.4f} | {r.mean:.4f} | {r.std:.4f} | {r.gap:+.4f} "
            f"| {r.verified_weights} ({100 * r.verified_fraction:.3f}%) | {r.train_seconds:.2f} ({r.train_cpu_seconds:.2f}) "
            f"| {r.pulses_per_chip:.0f} | {r.program_time_s:.4f} | {1e6 * r.program_energy_j:.2f} |"
        )
    return "\n".join(rows) + "\n"


def sweep_table(sweep: dict[float, dict[str, MethodResult]]) -> str:
    """Mean chip accuracy and gap of every method at every sigma, plus the NI/TSB gap ratio."""
    head = "| sigma | " + " | ".join(f"{LABELS[m]} acc (gap)" for m in METHODS) + " | gap NI / gap TSB |"
    rows = [head, "|" + "---|" * (len(METHODS) + 2)]
    for sigma in sorted(sweep):
        res = sweep[sigma]
        cells = " | ".join(f"{res[m].mean:.4f} ({res[m].gap:+.4f})" for m in METHODS)
        tsb_gap = res["tsb"].gap
        ratio = f"{res['noise_injection'].gap / tsb_gap:.1f}x" if tsb_gap > 0 else "TSB gap <= 0"
        rows.append(f"| {sigma} | {cells} | {ratio} |")
    return "\n".join(rows) + "\n"


def plot_sweep(sweep: dict[float, dict[str, MethodResult]], path: Path) -> None:
    """Mean chip accuracy (error bars: std over chips) against sigma, one line per method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sigmas = sorted(sweep)
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for name in METHODS:
        means = [sweep[s][name].mean for s in sigmas]
        stds = [sweep[s][name].std for s in sigmas]
        ax.errorbar(sigmas, means, yerr=stds, marker="o", capsize=3, label=LABELS[name])
    ax.set_xlabel("device variation sigma (fraction of conductance range)")
    ax.set_ylabel("test accuracy on chips")
    ax.set_title("LeNet on digits: accuracy over simulated chips")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_outputs(out: Path, main_sigma: float, sweep: dict[float, dict[str, MethodResult]], chips: int, meta: dict) -> dict:
    """Write ``results.json``, ``results.md`` and ``accuracy_vs_sigma.png`` into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    main = sweep[main_sigma]
    results = headline(main, chips)
    results["main_sigma"] = main_sigma
    results["meta"] = meta
    results["methods"] = {name: main[name].summary() for name in METHODS}
    results["sweep"] = {
        str(s): {name: {"mean": r.mean, "std": r.std, "gap": r.gap} for name, r in sweep[s].items()} for s in sorted(sweep)
    }
    (out / "results.json").write_text(json.dumps(results, indent=2))
    table = markdown_table(main)
    lines = [f"# TSB reproduction (sigma = {main_sigma}, {chips} chips)\n", table]
    lines.append(
        f"\nGap ratio NI/TSB: {results['gap_ratio_ni_over_tsb']:.2f}x; TSB training speed-up: "
        f"{results['train_speedup_tsb']:.2f}x wall, {results['train_cpu_speedup_tsb']:.2f}x CPU; TSB verified fraction: {100 * results['verified_fraction_tsb']:.3f}%\n"
    )
    lines.append("\n" + sweep_table(sweep))
    (out / "results.md").write_text("".join(lines))
    plot_sweep(sweep, out / "accuracy_vs_sigma.png")
    return results
