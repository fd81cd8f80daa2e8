"""Selective write-verify (SWV) on the very chips of a committed ``cim eval`` run.

``assistant cim eval`` measures SWV at 1, 10 and 100x the TSB's verified weights on every chip
it programs, but the committed full run (``benchmarks/cim/lm-full/cim-eval.json``) predates
that step, and a whole new run takes longer than this machine's session. Chips are the seed
plus the plan, so this script programs the same chips again (same plan, same seeds, same
per-layer ranges set on the same text; only since the ADC ranges are measured with the seed's
read noise, which the committed run predates: its chips and this script's committed output
differ by their ranges), measures each without TSB and with each SWV budget
on the same held-out windows, and puts the SWV recovery beside the committed TSB and
norm-gains recovery of the same chips. It writes after every chip and resumes from what the
output already holds.

    .venv/bin/python benchmarks/cim/bench_swv_on_eval_chips.py \
        [--eval benchmarks/cim/lm-full/cim-eval.json] [--out benchmarks/cim/lm-full/swv.json] [--quick]

``--quick``: the first chip of the first level, 10x only, two windows (a smoke run).
"""
from __future__ import annotations

import argparse
import copy
import json
import sys
import tempfile
import time
from dataclasses import fields, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


def _plan(committed: dict, quick: bool):
    from assistant.learn.cim_eval import EvalPlan

    known = {f.name for f in fields(EvalPlan)}
    plan = EvalPlan(**{k: tuple(v) if isinstance(v, list) else v for k, v in committed["plan"].items() if k in known})
    plan = replace(plan, swv_multiples=(1, 10, 100))
    return replace(plan, sigmas=plan.sigmas[:1], chips=1, eval_windows=2, swv_multiples=(10,)) if quick else plan


def _chip_rows(plan, out: Path, loaded, say) -> dict:
    """Measure every chip of ``plan`` not yet in ``out``; returns the rows by ``"sigma/seed"``."""
    import torch

    from assistant.learn.cim_corpus import calibration_text, corpus_for, token_windows
    from assistant.learn.cim_eval import cross_entropy, selective_write_verify, swv_scores
    from assistant.models.catalog import resolve_model, sha256_file
    from assistant.models.cim_engine import CIMEngine
    from assistant.settings import Settings

    settings = Settings(home=Path(tempfile.mkdtemp(prefix="swv-")))
    resolved = resolve_model("default", settings)
    digest = sha256_file(resolved.path)
    model, tokenizer = loaded
    text = calibration_text(tokenizer, settings, plan.window, plan.train_windows, plan.val_windows)
    evaluation = torch.tensor(token_windows(tokenizer, corpus_for(settings).evaluation, plan.window,
                                            plan.eval_windows))
    rows = json.loads(out.read_text())["chips"] if out.exists() else {}
    scores = swv_scores(model, text.train[:4])
    for sigma in plan.sigmas:
        for seed in range(plan.chips):
            key = f"{sigma:g}/{seed}"
            if key in rows:
                continue
            start = time.perf_counter()
            engine = CIMEngine(resolved, plan.chip_config(sigma, seed, resolved.name, digest), None, 2, seed=seed,
                               loaded=(copy.deepcopy(model), tokenizer))
            row = {"sigma": sigma, "seed": seed, "ce_digital": cross_entropy(engine, evaluation, "digital"),
                   "ce_cim": cross_entropy(engine, evaluation, "cim")}
            swv = selective_write_verify(engine, evaluation, plan, scores, lambda line: say(f"{key}: {line}"))
            rows[key] = {**row, "ce_swv": {str(m): ce for m, ce in swv.items()},
                         "seconds": time.perf_counter() - start}
            del engine
            out.write_text(json.dumps({"chips": rows}, indent=2) + "\n")
            say(f"{key}: chip {row['ce_cim']:.3f}, " + ", ".join(f"SWV {m}x {ce:.3f}" for m, ce in swv.items()))
    return rows


def _summary(committed: dict, rows: dict, plan) -> dict:
    """Per level: SWV recovery per multiple (mean, 95% CI over chips) beside the committed TSB
    and norm-gains recovery of the same chips."""
    from assistant.learn.cim_eval import mean_ci

    levels = []
    for sigma in plan.sigmas:
        chips = [r for r in rows.values() if r["sigma"] == sigma]
        if not chips:
            continue
        level = {"sigma": sigma, "chips": len(chips), "swv": {}}
        for m in plan.swv_multiples:
            rec = [(c["ce_cim"] - c["ce_swv"][str(m)]) / (c["ce_cim"] - c["ce_digital"]) for c in chips]
            mean, ci = mean_ci(rec)
            level["swv"][str(m)] = {"verified_weights": m * plan.width ** 2, "recovery": mean, "recovery_ci95": ci,
                                    "ce_mean": sum(c["ce_swv"][str(m)] for c in chips) / len(chips)}
        same = [lv for lv in committed.get("levels", []) if lv["sigma"] == sigma]
        if same:
            level["committed"] = {k: same[0].get(k) for k in ("recovery", "recovery_ci95", "recovery_norm_only",
                                                             "recovery_norm_only_ci95", "ppl_cim", "ppl_cim_tsb")}
        per_chip = {c["seed"]: c for c in committed.get("per_chip", []) if c["sigma"] == sigma}
        level["ce_cim_now_vs_committed"] = [[c["ce_cim"], per_chip[c["seed"]]["ce_cim"]] for c in chips
                                            if c["seed"] in per_chip]
        levels.append(level)
    return {"levels": levels, "plan": {"swv_multiples": list(plan.swv_multiples), "eval_windows": plan.eval_windows,
                                       "adc_bits": plan.adc_bits, "width": plan.width}}


def main(argv: list[str] | None = None) -> int:
    """Measure, write ``--out`` (rows after every chip, the summary at the end), print it."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--eval", type=Path, default=ROOT / "benchmarks/cim/lm-full/cim-eval.json")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/cim/lm-full/swv.json")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    from assistant.models.catalog import resolve_model
    from assistant.models.hf_model import load_hf_model
    from assistant.settings import Settings

    committed = json.loads(args.eval.read_text())
    plan = _plan(committed, args.quick)
    say = lambda line: print(line, file=sys.stderr, flush=True)  # noqa: E731
    loaded = load_hf_model(resolve_model("default", Settings(home=Path(tempfile.mkdtemp()))).path, 2)
    rows = _chip_rows(plan, args.out, loaded, say)
    summary = _summary(committed, rows, plan)
    args.out.write_text(json.dumps({"chips": rows, **summary}, indent=2) + "\n")
    for level in summary["levels"]:
        swv = ", ".join(f"{m}x {v['recovery']:.2f}" for m, v in level["swv"].items())
        print(f"sigma {level['sigma']:g} ({level['chips']} chips): SWV recovery {swv}; committed TSB "
              f"{(level.get('committed') or {}).get('recovery')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
