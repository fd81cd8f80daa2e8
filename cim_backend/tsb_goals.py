"""The #13 goals checked against the aggregated figures (``results.json``'s ``goals``).

Each check says what was asked, what was measured and whether it was met, by the same rules
the figures use: a tie is a paired-difference interval that contains 0; "N x" needs the
ratio interval's lower bound >= N. A goal that cannot be evaluated (a sigma not run) says so
rather than passing.
"""

from __future__ import annotations

CHIPS_WANTED = {"lenet": 100, "vgg": 30}
GOAL_SIGMAS = ("0.1", "0.2")
SWV_MULTIPLE = 10.0
GAP_RATIO = 20.0
NI_LOSS_POINTS = 2.0
SPEEDUP = 5.0
SPEEDUP_FLEETS = ("1", "100")


def _check(goal: str, measured: str, met: bool | None) -> dict:
    return {"goal": goal, "measured": measured, "met": met}


def _at_least_ties(block: dict, rival: str, sigma: str) -> dict:
    goal = f"sigma {sigma}: TSB at least ties {rival}"
    vs = block.get("vs_tsb", {}).get(rival)
    if vs is None:
        return _check(goal, f"{rival} not run", None)
    lo, hi = vs["ci"]
    diff = -vs["difference"]  # TSB minus rival
    verdict = "tie" if vs["tie"] else ("TSB better" if hi < 0 else "TSB worse")
    return _check(goal, f"TSB - {rival} = {100 * diff:+.2f} points [{-100 * hi:+.2f}, {-100 * lo:+.2f}] ({verdict})", lo <= 0)


def _swv_multiple(block: dict, sigma: str) -> dict:
    goal = f"sigma {sigma}: selective write-verify needs >= {SWV_MULTIPLE:g}x TSB's verified weights to match it"
    c = block.get("swv_crossing", {})
    if c.get("status") == "crosses" or c.get("multiple") is not None:
        return _check(goal, f"{c['multiple']:.1f}x ({c['weights']:.0f} weights)", c["multiple"] >= SWV_MULTIPLE)
    if str(c.get("status", "")).startswith("never"):
        return _check(goal, "never reaches TSB's mean accuracy, even verifying every weight", True)
    return _check(goal, str(c.get("status", "not run")), None)


def _gap_ratio(net: dict) -> list[dict]:
    out = []
    for sigma, block in sorted(net["sigmas"].items(), key=lambda kv: float(kv[0])):
        ni = block["methods"].get("noise_injection")
        ratio = block.get("gap_ratio_ni_over_tsb")
        if not ni or not ratio or 100 * ni["gap"] < NI_LOSS_POINTS:
            continue
        lo, hi = ratio["ci"]
        out.append(_check(
            f"sigma {sigma} (NI loses {100 * ni['gap']:.1f} points): TSB's gap >= {GAP_RATIO:g}x smaller than NI's",
            f"ratio {ratio['point']:.2f} [{lo:.2f}, {hi:.2f}]", lo >= GAP_RATIO))
    if not out:
        out.append(_check(f"TSB's gap >= {GAP_RATIO:g}x smaller than NI's where NI loses >= {NI_LOSS_POINTS:g} points",
                          "no sigma run where NI loses that much", None))
    return out


def _speedup(block: dict) -> list[dict]:
    tsb, rival = block["methods"].get("tsb"), block["methods"].get("last_layer")
    if not tsb or not rival:
        return [_check("training speed-up of TSB over per-chip last-layer fine-tuning", "not run", None)]
    out = []
    for n in SPEEDUP_FLEETS:
        t, r = tsb["fleet_seconds"][n], rival["fleet_seconds"][n]
        out.append(_check(
            f"{n} chip(s): TSB (early NI training + N x (read-back + calibration)) >= {SPEEDUP:g}x faster than "
            "NI training + N x (read-back + last-layer fine-tuning)",
            f"{t:.1f} s vs {r:.1f} s: {r / t:.2f}x", r / t >= SPEEDUP))
    return out


def network_goals(network: str, net: dict, main_sigma: str) -> list[dict]:
    """Every goal of the issue for one network's aggregated figures."""
    checks = []
    main = net["sigmas"].get(main_sigma) or next(iter(net["sigmas"].values()))
    chips = main["methods"]["tsb"]["chips"]
    wanted = CHIPS_WANTED.get(network)
    if wanted:
        checks.append(_check(f">= {wanted} test chips", f"{chips} chips", chips >= wanted))
    for sigma in GOAL_SIGMAS:
        block = net["sigmas"].get(sigma)
        if block is None:
            checks.append(_check(f"sigma {sigma}: the comparisons", "sigma not run", None))
            continue
        checks += [_at_least_ties(block, "noise_injection", sigma), _at_least_ties(block, "swv@1x", sigma),
                   _swv_multiple(block, sigma)]
    checks += _gap_ratio(net)
    checks += _speedup(main)
    return checks


def add_goals(results: dict) -> dict:
    """``results`` with each network's ``goals`` (re)computed from its figures."""
    main = str(results["settings"]["main_sigma"])
    for network, net in results["networks"].items():
        net["goals"] = network_goals(network, net, main)
    return results
