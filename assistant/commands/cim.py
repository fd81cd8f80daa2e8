"""``assistant cim``: the simulated NVCIM accelerator.

``cim program`` realises one chip for the served model and stores it under
``$ASSISTANT_HOME/cim/``; ``cim calibrate`` trains its Tiny Shared Block; ``cim status``
shows it; ``cim eval [--quick] --out FILE`` measures chips with and without TSB;
``cim reproduce [--quick] --out DIR`` runs the TSB reproduction. torch is imported only by
the actions that need it."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Optional

from assistant.commands.common import add_settings_flags, cli_errors, settings_from_args
from assistant.models.cim_tsb import DEFAULT_LR, DEFAULT_WIDTH

ACTIONS = ("program", "calibrate", "status", "eval", "compare", "reproduce")


def _parser() -> argparse.ArgumentParser:
    """The command line of ``assistant cim program | calibrate | status | eval``."""
    parser = argparse.ArgumentParser(prog="assistant cim", description=__doc__)
    sub = parser.add_subparsers(dest="action", required=True)
    program = sub.add_parser("program", help="realise one chip for the served model and store it")
    program.add_argument("--device", default="rram", help="device preset: rram, fefet or pcm (default rram)")
    program.add_argument("--weight-bits", type=int, default=4)
    program.add_argument("--dac-bits", type=int, default=8)
    program.add_argument("--adc-bits", default="6", help="ADC bits, or 'ideal' (default 6)")
    program.add_argument("--tile", type=int, default=128, help="crossbar rows and columns per tile (default 128)")
    program.add_argument("--sigma", type=float, default=0.02, help="programming variation, relative (default 0.02)")
    program.add_argument("--seed", type=int, default=0, help="the chip's seed (its variation realisation)")
    calibrate = sub.add_parser("calibrate", help="train the stored chip's TSB by distillation from the digital model")
    calibrate.add_argument("--budget", type=float, default=300.0, help="seconds of training (default 300)")
    calibrate.add_argument("--width", type=int, default=DEFAULT_WIDTH,
                           help=f"the block's width k (default {DEFAULT_WIDTH}, chosen on validation)")
    calibrate.add_argument("--lr", type=float, default=DEFAULT_LR,
                           help=f"Adam's learning rate (default {DEFAULT_LR:g}, chosen on validation)")
    calibrate.add_argument("--max-steps", type=int, default=None, help="stop after this many steps too")
    calibrate.add_argument("--windows", type=int, default=24, help="64-token calibration windows (default 24)")
    status = sub.add_parser("status", help="show the stored chip")
    status.add_argument("--json", action="store_true", help="the stored record as JSON")
    evaluate = sub.add_parser("eval", help="held-out perplexity of the digital model, chips and chips + TSB")
    evaluate.add_argument("--quick", action="store_true", help="one chip per level, 30-second calibrations")
    evaluate.add_argument("--out", type=Path, required=True, help="JSON to write (a PNG is written beside it)")
    evaluate.add_argument("--chips", type=int, default=None, help="chips per variation level (default 5; quick 1)")
    evaluate.add_argument("--sigmas", default=None, help="variation levels, comma-separated (default 0.05,0.1)")
    evaluate.add_argument("--budget", type=float, default=None, help="calibration seconds per chip (180; quick 30)")
    evaluate.add_argument("--adc-bits", default="6", help="ADC bits, or 'ideal' (default 6)")
    parts = evaluate.add_mutually_exclusive_group()
    parts.add_argument("--encoder-only", action="store_true", help="only the notes encoder's retrieval on chips")
    parts.add_argument("--no-encoder", action="store_true", help="only the language model")
    evaluate.add_argument("--max-steps", type=int, default=None, help=argparse.SUPPRESS)  # tests: a fixed step count
    evaluate.add_argument("--eval-windows", type=int, default=None, help=argparse.SUPPRESS)
    evaluate.add_argument("--window", type=int, default=None, help=argparse.SUPPRESS)
    compare = sub.add_parser("compare", help="the digital, chip and chip + TSB answers to one question, with costs")
    compare.add_argument("question", help="the question; '-' reads it from stdin")
    compare.add_argument("--strategy", default="auto", choices=["auto", "base", "rag"],
                         help="as in a request (default auto: passages from the notes when the router says so)")
    compare.add_argument("--max-tokens", type=int, default=32)
    compare.add_argument("--json", action="store_true", help="the answers and costs as JSON")
    for p in (program, calibrate, status, evaluate, compare):
        add_settings_flags(p, ["home", "model", "n_threads"])
    add_settings_flags(compare, ["profile"])
    return parser


def _adc_bits(text: str) -> Optional[int]:
    from assistant.errors import InvalidRequestError

    if text == "ideal":
        return None
    try:
        return int(text)
    except ValueError as exc:
        raise InvalidRequestError(f"--adc-bits wants a number or 'ideal', not '{text}'", param="adc_bits") from exc


def _program(args: argparse.Namespace) -> int:
    from assistant.models.catalog import resolve_model, sha256_file
    from assistant.models.cim_chip import ChipSpec, program_chip

    settings = settings_from_args(args)
    resolved = resolve_model(settings.model, settings)
    spec = ChipSpec(model=resolved.name, model_sha256=sha256_file(resolved.path), device=args.device,
                    weight_bits=args.weight_bits, dac_bits=args.dac_bits, adc_bits=_adc_bits(args.adc_bits),
                    tile_rows=args.tile, tile_cols=args.tile, sigma_rel=args.sigma, seed=args.seed)
    spec.cim_config()  # a clear error for impossible settings before the model loads
    print(f"programming a {spec.device} chip (seed {spec.seed}) for {resolved.name}...", file=sys.stderr)
    record, _ = program_chip(settings, spec, settings.n_threads or 2)
    for label, value in record.summary():
        print(f"{label:12s} {value}")
    print(f"stored       {record.path_for(settings.layout, resolved.name)}")
    return 0


def _status(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from assistant.errors import InvalidRequestError
    from assistant.models.catalog import find_entry
    from assistant.models.cim_chip import ChipRecord

    settings = settings_from_args(args)
    name = find_entry(settings.model, settings).name
    record = ChipRecord.load(settings.layout, name)
    if record is None:
        raise InvalidRequestError(f"no programmed chip for {name}: run 'assistant cim program' first",
                                  param="model", code="no_chip")
    if args.json:
        print(json.dumps(asdict(record), indent=2))
    else:
        for label, value in record.summary():
            print(f"{label:12s} {value}")
    return 0


def _calibrate(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from cim_backend.distill import DistillConfig

    from assistant.learn.cim_corpus import calibration_text
    from assistant.models.cim_chip import load_chip_engine, save_calibration
    from assistant.models.cim_tsb import calibrate_tsb

    settings = settings_from_args(args)
    engine, record = load_chip_engine(settings, settings.model, settings.n_threads or 2)
    text = calibration_text(engine.tokenizer, settings, train_windows=args.windows)
    print(f"calibrating a {args.width}x{args.width} TSB on {text.source} text for up to {args.budget:.0f} s "
          "(Ctrl-C stops and keeps the best so far)...", file=sys.stderr)
    with tqdm(total=None, unit="step", file=sys.stderr) as bar:
        def progress(step: int, best: float) -> None:
            bar.update(step - bar.n)
            bar.set_postfix(best_val_kl=f"{best:.4f}")

        result = calibrate_tsb(engine, text, DistillConfig(lr=args.lr, budget_s=args.budget,
                                                           max_steps=args.max_steps, seed=record.spec.seed),
                               args.width, progress=progress)
    record = save_calibration(settings, record, engine, result.best_val_kl, text.source)
    print(f"validation KL to the digital model: {result.initial_val_kl:.4f} -> {result.best_val_kl:.4f} nats/token "
          f"(best at step {result.best_step} of {result.steps}, {result.seconds:.0f} s"
          f"{', interrupted' if result.interrupted else ''})")
    for label, value in record.summary():
        print(f"{label:12s} {value}")
    return 0


def _eval(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from assistant.learn.cim_eval import EvalPlan, plot, run_eval, summarize

    settings = settings_from_args(args)
    plan = EvalPlan.quick() if args.quick else EvalPlan()
    overrides = {"chips": args.chips, "budget_s": args.budget, "max_steps": args.max_steps,
                 "eval_windows": args.eval_windows, "window": args.window,
                 "sigmas": tuple(float(v) for v in args.sigmas.split(",")) if args.sigmas else None}
    plan = replace(plan, adc_bits=_adc_bits(args.adc_bits), **{k: v for k, v in overrides.items() if v is not None})
    say = lambda line: print(line, file=sys.stderr, flush=True)  # noqa: E731
    report = None if args.encoder_only else run_eval(settings, settings.model, plan, settings.n_threads or 2,
                                                     progress=say)
    encoder = None
    if not args.no_encoder:
        import tempfile

        from assistant.learn.cim_encoder import encoder_eval

        with tempfile.TemporaryDirectory(prefix="cim-encoder-") as home:  # the benchmark notes' own index
            encoder = encoder_eval(plan.chip_config, plan.sigmas, plan.chips, plan.encoder_budget_s,
                                   settings.n_threads or 2, Path(home), max_steps=plan.max_steps, say=say)
    summary = summarize(report, encoder)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(summary, indent=2) + "\n")
    plot(summary, args.out.with_suffix(".png"))
    for level in summary["levels"] or []:
        rec = "not scored (gap < 0.1 nats)" if level["recovery"] is None else f"recovery {level['recovery']:.2f}"
        print(f"sigma {level['sigma']:g}: ppl digital {summary['ppl_digital']:.2f}, chip {level['ppl_cim']:.2f}, "
              f"chip+TSB {level['ppl_cim_tsb']:.2f}, norm gains only {level['ppl_norm_only']:.2f}; {rec}")
    if encoder is not None:
        print(f"encoder MRR (vectors only): digital {summary['mrr_digital']:.3f}, chip "
              f"{', '.join(f'{v:.3f}' for v in summary['mrr_cim'])}, chip+TSB "
              f"{', '.join(f'{v:.3f}' for v in summary['mrr_cim_tsb'])} (sigma {summary['sigma']})")
    print(f"wrote {args.out}" + (f" and {args.out.with_suffix('.png')}" if report is not None else ""))
    return 0


def _compare(args: argparse.Namespace) -> int:
    from assistant.commands.common import read_question
    from assistant.models.chat_format import ChatMessage
    from assistant.models.generation import SamplingParams
    from assistant.orchestrator import Assistant, AskRequest
    from assistant.router.plan import Backend, Strategy

    question = read_question(_parser(), args.question)
    settings = settings_from_args(args).model_copy(update={"backend": "cim"})
    assistant = Assistant.load(settings)
    chip = assistant.cim
    variants = ["digital", "cim"] + (["cim+tsb"] if chip.block is not None else [])
    request = AskRequest([ChatMessage("user", question)], strategy=Strategy(args.strategy), backend=Backend.CIM,
                         sampling=SamplingParams(max_tokens=args.max_tokens, temperature=0.0, seed=0))
    rows = []
    for variant in variants:
        with chip.variant(variant):
            answer = assistant.answer(request)
        cost = answer.stats.cim or {}
        rows.append({"variant": variant, "answer": answer.text.strip(), "sources": [s.path for s in answer.sources],
                     "strategy": str(answer.plan.strategy), "tokens": cost.get("tokens"),
                     "energy_uj": None if variant == "digital" else cost.get("energy_uj"),
                     "latency_ms": None if variant == "digital" else cost.get("latency_ms"),
                     "cpu_energy_uj_estimate": cost.get("cpu_energy_uj_estimate"),
                     "simulation_s": round(answer.stats.total_s, 2)})
    if args.json:
        print(json.dumps({"question": question, "chip_seed": chip.seed, "answers": rows}, indent=2))
        return 0
    if chip.block is None:
        print("(no TSB on this chip: run 'assistant cim calibrate' for the third answer)", file=sys.stderr)
    for row in rows:
        print(f"== {row['variant']} ({row['strategy']}, {row['tokens']} tokens, {row['simulation_s']} s to run here)")
        print(row["answer"] or "(empty answer)")
        if row["energy_uj"] is not None:
            print(f"   chip: {row['energy_uj']:,.1f} uJ, {row['latency_ms']:,.2f} ms; "
                  f"a CPU doing the same matrix work: ~{row['cpu_energy_uj_estimate']:,.0f} uJ")
    return 0


@cli_errors
def _chip_action(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    actions = {"program": _program, "calibrate": _calibrate, "status": _status, "eval": _eval, "compare": _compare}
    return actions[args.action](args)


def main(argv: Optional[list[str]] = None) -> int:
    """Dispatch ``cim program | calibrate | status | eval | compare | reproduce``."""
    args = list(argv or [])
    if not args or args[0] in ("-h", "--help"):
        print("usage: assistant cim {program,calibrate,status,eval,compare,reproduce} ...   (assistant cim ACTION --help)")
        return 0 if args else 2
    if args[0] not in ACTIONS:
        print(f"error: unknown cim action '{args[0]}' (known: {', '.join(ACTIONS)})", file=sys.stderr)
        return 2
    if args[0] == "reproduce":
        from cim_backend.reproduce import main as reproduce_main

        return reproduce_main(args[1:])
    return _chip_action(args)


if __name__ == "__main__":
    raise SystemExit(main())
