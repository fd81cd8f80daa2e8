"""Aggregate the folds of the TSB study into figures with intervals (``results.json``'s body).

Every accuracy is the mean over chips and test images of all folds, with a 95% paired
bootstrap interval (:mod:`cim_backend.stats`). Gaps are taken against ONE common reference, the
digital model trained without any chip (epochs chosen on validation); each method's gap to its
own digital model is kept as a secondary column. Differences to TSB are paired; a tie is an
interval that contains 0; a ratio of gaps "N x" needs its interval's lower bound >= N.
"""

from __future__ import annotations

import math

import numpy as np

from . import stats
from .config import CIMConfig
from .cost import programming_cost, readback_cost

FLEET_SIZES = (1, 100, 10_000)


def _mean(values) -> float:
    values = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    return float(np.mean(values)) if values else float("nan")


def method_summary(outcomes: list, draws: stats.Draws, ref_samples: np.ndarray, ref_point: float, cfg: CIMConfig) -> tuple[dict, np.ndarray]:
    """Figures of one method over all folds; also returns its bootstrap accuracy samples."""
    correct = [o.correct for o in outcomes]
    samples = stats.replicate_accuracy(correct, draws)
    point = stats.point_accuracy(correct)
    gap = ref_samples - samples
    pulses = _mean(o.pulses_per_chip for o in outcomes)
    reads = _mean(o.verify_reads_per_chip for o in outcomes)
    readback = _mean(o.readback_reads_per_chip for o in outcomes)
    prog = programming_cost(pulses, reads, cfg.device)
    rb = readback_cost(int(round(readback)), cfg.device)
    per_chip_s = _mean(o.per_chip_seconds for o in outcomes)
    train_s = _mean(o.train_seconds for o in outcomes)
    mapping_time = prog.time_s + rb.time_s
    out = {
        "accuracy": point,
        "ci": list(stats.interval(samples)),
        "gap": ref_point - point,
        "gap_ci": list(stats.interval(gap)),
        "own_reference": _mean(o.own_reference for o in outcomes),
        "own_gap": _mean(o.own_reference for o in outcomes) - point,
        "chips": int(sum(o.correct.shape[0] for o in outcomes)),
        "images": int(sum(o.correct.shape[1] for o in outcomes)),
        "weights": _mean(o.weights for o in outcomes),
        "verified_weights": _mean(o.verified_weights for o in outcomes),
        "verified_fraction": _mean(o.verified_weights / o.weights for o in outcomes),
        "pulses_per_chip": pulses,
        "verify_reads_per_chip": reads,
        "readback_reads_per_chip": readback,
        "mapping_time_s": mapping_time,
        "mapping_energy_uj": (prog.energy_j + rb.energy_j) * 1e6,
        "readback_energy_uj": rb.energy_j * 1e6,
        "train_seconds": train_s,
        "per_chip_fit_seconds": per_chip_s,
        "fleet_seconds": {str(n): train_s + n * (per_chip_s + mapping_time) for n in FLEET_SIZES},
        "choices": [o.choice for o in outcomes],
    }
    if all(o.drift for o in outcomes):  # drift runs for a fixed set of methods (tsb_k<k> only when k was chosen)
        out["drift"] = {}
        for t in outcomes[0].drift:
            d = [o.drift[t] for o in outcomes]
            ds = stats.replicate_accuracy(d, draws)
            out["drift"][t] = {"accuracy": stats.point_accuracy(d), "ci": list(stats.interval(ds))}
    return out, samples


def swv_crossing(methods: dict, tsb_accuracy: float, tsb_weights: float) -> dict:
    """Verified weights selective write-verify needs to reach TSB's mean accuracy (log interpolation)."""
    points = sorted(
        (m["verified_weights"], m["accuracy"]) for name, m in methods.items() if name.startswith("swv@")
    )
    if not points:
        return {"status": "not run"}
    if points[0][1] >= tsb_accuracy:
        return {"status": "at or above TSB at the smallest budget", "weights": points[0][0], "multiple": points[0][0] / tsb_weights}
    for (w0, a0), (w1, a1) in zip(points, points[1:]):
        if a0 < tsb_accuracy <= a1:
            frac = (tsb_accuracy - a0) / (a1 - a0)
            w = math.exp(math.log(w0) + frac * (math.log(w1) - math.log(w0)))
            return {"status": "crosses", "weights": w, "multiple": w / tsb_weights}
    return {"status": "never reaches TSB (even verifying every weight)", "weights": None, "multiple": None}


def aggregate_sigma(fold_outcomes: list[dict], references: list[np.ndarray], cfg: CIMConfig, replicates: int, seed: int) -> dict:
    """All methods at one sigma over the folds (methods run on every fold only)."""
    names = [n for n in fold_outcomes[0] if all(n in f for f in fold_outcomes)]
    draws = stats.draw([f[names[0]].correct.shape[0] for f in fold_outcomes], [len(r) for r in references], replicates, seed)
    ref_samples = stats.replicate_reference(references, draws)
    ref_point = stats.point_reference(references)
    methods, samples = {}, {}
    for name in names:
        methods[name], samples[name] = method_summary([f[name] for f in fold_outcomes], draws, ref_samples, ref_point, cfg)
    out = {
        "reference": {"accuracy": ref_point, "ci": list(stats.interval(ref_samples))},
        "methods": methods,
        "replicates": replicates,
    }
    if "tsb" in samples:
        out["vs_tsb"] = {}
        for name in names:
            if name == "tsb":
                continue
            diff = samples[name] - samples["tsb"]
            out["vs_tsb"][name] = {
                "difference": methods[name]["accuracy"] - methods["tsb"]["accuracy"],
                "ci": list(stats.interval(diff)),
                "tie": stats.is_tie(diff),
            }
        if "noise_injection" in samples:
            gap_ni, gap_tsb = ref_samples - samples["noise_injection"], ref_samples - samples["tsb"]
            g_ni, g_tsb = methods["noise_injection"]["gap"], methods["tsb"]["gap"]
            out["gap_ratio_ni_over_tsb"] = {
                "point": g_ni / g_tsb if g_tsb > 0 else float("inf"),
                "ci": list(stats.ratio_interval(gap_ni, gap_tsb)),
            }
        out["swv_crossing"] = swv_crossing(methods, methods["tsb"]["accuracy"], methods["tsb"]["verified_weights"])
    return out
