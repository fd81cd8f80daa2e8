"""The flat keys ``results.json`` promises besides its full figures.

Per network and sigma: ``acc_mean`` and ``acc_ci95`` per method, ``gap_common_reference`` per
method, and ``verified_budget_to_match_tsb`` (the smallest measured selective-write-verify
budget, in verified weights, whose mean accuracy reaches TSB's; null when none does; the
interpolated crossing is ``swv_crossing``). At the top level, the keys the first
reproduction wrote (LeNet at the main sigma), now on the new footing: gaps are against the
common digital reference, ``selective_wv`` is write-verify at TSB's budget (``swv@1x``),
``gap_ratio_ni_over_tsb`` is the bootstrap's point estimate (its interval sits beside it in
``networks``), and ``train_speedup_tsb`` is the issue's definition at one chip: NI training +
read-back + last-layer fine-tuning over TSB's early training + read-back + calibration.
"""

from __future__ import annotations

LEGACY_NETWORK = "lenet"
LEGACY_METHODS = {"plain": "plain", "noise_injection": "noise_injection", "selective_wv": "swv@1x", "tsb": "tsb"}


def budget_to_match_tsb(block: dict) -> float | None:
    """Smallest measured write-verify budget (verified weights) whose mean accuracy reaches TSB's."""
    tsb = block["methods"].get("tsb")
    if tsb is None:
        return None
    budgets = sorted((m["verified_weights"], m["accuracy"]) for n, m in block["methods"].items() if n.startswith("swv@"))
    return next((weights for weights, acc in budgets if acc >= tsb["accuracy"]), None)


def add_sigma_keys(block: dict) -> None:
    """``acc_mean``, ``acc_ci95``, ``gap_common_reference`` and ``verified_budget_to_match_tsb`` for one sigma."""
    methods = block["methods"]
    block["acc_mean"] = {n: m["accuracy"] for n, m in methods.items()}
    block["acc_ci95"] = {n: list(m["ci"]) for n, m in methods.items()}
    block["gap_common_reference"] = {n: m["gap"] for n, m in methods.items()}
    block["verified_budget_to_match_tsb"] = budget_to_match_tsb(block)


def legacy_keys(results: dict) -> dict:
    """The first reproduction's top-level keys, from LeNet at the main sigma (empty if it did not run)."""
    net = results["networks"].get(LEGACY_NETWORK)
    main = str(results["settings"]["main_sigma"])
    if not net or main not in net["sigmas"]:
        return {}
    methods = net["sigmas"][main]["methods"]
    out: dict = {"main_sigma": results["settings"]["main_sigma"], "chips": methods["tsb"]["chips"]}
    for key, name in LEGACY_METHODS.items():
        if name in methods:
            out[f"gap_{key}"] = methods[name]["gap"]
    for key in ("tsb", "selective_wv"):
        if LEGACY_METHODS[key] in methods:
            out[f"verified_fraction_{key}"] = methods[LEGACY_METHODS[key]]["verified_fraction"]
    for key in ("noise_injection", "tsb"):
        out[f"train_seconds_{key}"] = methods[key]["train_seconds"]
    ratio = net["sigmas"][main].get("gap_ratio_ni_over_tsb")
    out["gap_ratio_ni_over_tsb"] = ratio["point"] if ratio else None
    if "last_layer" in methods:
        out["train_speedup_tsb"] = methods["last_layer"]["fleet_seconds"]["1"] / methods["tsb"]["fleet_seconds"]["1"]
    out["methods"] = {key: methods[name] for key, name in LEGACY_METHODS.items() if name in methods}
    out["sweep"] = {
        sigma: {key: {"mean": b["methods"][name]["accuracy"], "ci": b["methods"][name]["ci"], "gap": b["methods"][name]["gap"]}
                for key, name in LEGACY_METHODS.items() if name in b["methods"]}
        for sigma, b in sorted(net["sigmas"].items(), key=lambda kv: float(kv[0]))
    }
    return out


def add_result_keys(results: dict) -> dict:
    """``results`` with the per-sigma keys and the legacy top-level keys (re)computed from its figures."""
    for net in results["networks"].values():
        for block in net["sigmas"].values():
            add_sigma_keys(block)
    results.update(legacy_keys(results))
    return results
