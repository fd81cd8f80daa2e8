"""Choosing the TSB's learning rate and width for the language model on validation text, on
chips the evaluation never programs.

``assistant cim eval`` calibrates with ``EvalPlan.lr`` and ``EvalPlan.width``; this script is
where they come from. Protocol, fixed before any run:
- chips: seed 1000 at each variation level of the evaluation plan (the evaluation programs
  seeds 0 to ``chips - 1``), with the plan's device, weight bits and ADC;
- text: the calibration text's training windows to distil on and its validation windows to
  score (the evaluation text is never read here);
- each calibration runs a fixed number of optimizer steps (``--steps``, default 24: about the
  median the full evaluation's 180-second budget reached per chip, 16 to 30), so a busy
  machine changes nothing but the wall time;
- score: cross-entropy of chip + TSB on the validation windows, averaged over the levels;
- search, coordinate-wise: the learning rate over ``LRS`` at ``START_WIDTH`` (the default
  before this search), then the width over ``WIDTHS`` (each divides 192, 576 and 1536) at the
  best learning rate. A wider block has more weights (``width**2``, each write-verified).
It writes after every calibration and resumes from what ``--out`` already holds.

    .venv/bin/python benchmarks/cim/select_tsb.py [--steps 24] [--out benchmarks/cim/lm-full/tsb-selection.json]
    .venv/bin/python benchmarks/cim/select_tsb.py --quick    # 1 step, 2 learning rates, first level (smoke,
                                                             # to benchmarks/cim/lm-quick/)
"""
from __future__ import annotations

import argparse
import copy
import json
import math
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

SELECTION_SEED = 1000
LRS = (0.001, 0.003, 0.01)
WIDTHS = (32, 64, 96)
START_WIDTH = 64  # fixed, not the plan's default: the choice made here became that default


def coordinate_search(score: Callable[[float, int], float], lrs, widths, default_width: int) -> dict:
    """The learning rate with the lowest ``score(lr, default_width)``, then the width with the
    lowest ``score(best_lr, width)``; every trial in order, and the choice."""
    trials = [{"lr": lr, "width": default_width, "score": score(lr, default_width)} for lr in lrs]
    best_lr = min(trials, key=lambda t: t["score"])["lr"]
    trials += [{"lr": best_lr, "width": w, "score": score(best_lr, w)} for w in widths if w != default_width]
    best = min((t for t in trials if t["lr"] == best_lr), key=lambda t: t["score"])
    return {"trials": trials, "lr": best["lr"], "width": best["width"]}


def _validation_ce(plan, sigma: float, lr: float, width: int, steps: int, served, loaded, text, say) -> dict:
    """Program the selection chip at ``sigma`` (``served``: the resolved model and its sha256),
    calibrate its TSB and score it on validation."""
    from cim_backend.distill import DistillConfig

    from assistant.learn.cim_eval import cross_entropy
    from assistant.models.cim_engine import CIMEngine
    from assistant.models.cim_tsb import calibrate_tsb

    resolved, digest = served
    model, tokenizer = loaded
    config = plan.chip_config(sigma, SELECTION_SEED, resolved.name, digest)
    engine = CIMEngine(resolved, config, None, 2, seed=SELECTION_SEED, loaded=(copy.deepcopy(model), tokenizer))
    started = time.perf_counter()
    result = calibrate_tsb(engine, text, DistillConfig(lr=lr, budget_s=math.inf, max_steps=steps,
                                                       seed=SELECTION_SEED), width)
    row = {"sigma": sigma, "lr": lr, "width": width, "steps": result.steps,
           "val_ce_cim": cross_entropy(engine, text.val, "cim"),
           "val_ce_cim_tsb": cross_entropy(engine, text.val, "cim+tsb"),
           "calibration_s": time.perf_counter() - started}
    say(f"sigma {sigma:g} lr {lr:g} width {width}: validation CE {row['val_ce_cim']:.3f} -> "
        f"{row['val_ce_cim_tsb']:.3f} in {row['calibration_s']:.0f} s")
    return row


def run(args: argparse.Namespace, loaded=None, say=print) -> dict:
    """The search; ``loaded``: a ``(torch model, tokenizer)`` to copy instead of loading."""
    from dataclasses import replace

    from assistant.learn.cim_corpus import calibration_text
    from assistant.learn.cim_eval import EvalPlan
    from assistant.models.catalog import resolve_model, sha256_file
    from assistant.models.hf_model import load_hf_model
    from assistant.settings import Settings

    plan = EvalPlan()
    if args.quick:
        plan = replace(plan, sigmas=plan.sigmas[:1], train_windows=4, val_windows=2)
    settings = Settings(home=Path(tempfile.mkdtemp(prefix="select-tsb-")))
    resolved = resolve_model("default", settings)
    served = (resolved, sha256_file(resolved.path))  # hashed once, not per calibration
    loaded = loaded or load_hf_model(resolved.path, 2, settings.layout.tokenizers)
    text = calibration_text(loaded[1], settings, plan.window, plan.train_windows, plan.val_windows)
    done = json.loads(args.out.read_text()) if args.out and args.out.exists() else {}
    rows = {key: row for key, row in done.get("rows", {}).items() if row.get("steps_asked") == args.steps}

    def score(lr: float, width: int) -> float:
        values = []
        for sigma in plan.sigmas:
            key = f"{sigma:g}/{lr:g}/{width}"
            if key not in rows:
                rows[key] = {**_validation_ce(plan, sigma, lr, width, args.steps, served, loaded, text, say),
                             "steps_asked": args.steps}
                _write(args.out, {"rows": rows})
            values.append(rows[key]["val_ce_cim_tsb"])
        return sum(values) / len(values)

    lrs, widths = (LRS[:2], (START_WIDTH,)) if args.quick else (LRS, WIDTHS)
    search = coordinate_search(score, lrs, widths, START_WIDTH)
    report = {"protocol": {"seed": SELECTION_SEED, "sigmas": list(plan.sigmas), "steps": args.steps,
                           "train_windows": plan.train_windows, "val_windows": plan.val_windows,
                           "window": plan.window, "device": plan.device, "weight_bits": plan.weight_bits,
                           "adc_bits": plan.adc_bits, "source": text.source, "quick": bool(args.quick)},
              "search": search, "plan_in_use": {"lr": EvalPlan().lr, "width": EvalPlan().width},
              "rows": rows}
    _write(args.out, report)
    return report


def _write(path, data: dict) -> None:
    if path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(data, indent=2))


def main(argv: list[str] | None = None) -> int:
    """Run the search and print the trials and the choice."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--steps", type=int, default=24)
    parser.add_argument("--out", type=Path, help="default: benchmarks/cim/lm-full/tsb-selection.json "
                                                  "(--quick: lm-quick/)")
    args = parser.parse_args(argv)
    if args.quick:
        args.steps = 1
    args.out = args.out or ROOT / "benchmarks" / "cim" / ("lm-quick" if args.quick else "lm-full") / "tsb-selection.json"
    report = run(args)
    for trial in report["search"]["trials"]:
        print(f"lr {trial['lr']:g} width {trial['width']}: mean validation CE {trial['score']:.4f}")
    print(f"chosen: lr {report['search']['lr']:g}, width {report['search']['width']} "
          f"(the evaluation plan uses lr {report['plan_in_use']['lr']:g}, width {report['plan_in_use']['width']})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
