"""``assistant cim``: the simulated NVCIM accelerator.

``cim program`` realises one chip for the served model and stores it under
``$ASSISTANT_HOME/cim/``; ``cim status`` shows it; ``cim reproduce [--quick] --out DIR`` runs
the TSB reproduction. torch is imported only by the actions that need it."""
from __future__ import annotations

import argparse
import json
import sys
from typing import Optional

from assistant.commands.common import add_settings_flags, cli_errors, settings_from_args

ACTIONS = ("program", "status", "reproduce")


def _parser() -> argparse.ArgumentParser:
    """The command line of ``assistant cim program | status``."""
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
    status = sub.add_parser("status", help="show the stored chip")
    status.add_argument("--json", action="store_true", help="the stored record as JSON")
    for p in (program, status):
        add_settings_flags(p, ["home", "model", "n_threads"])
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


@cli_errors
def _chip_action(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    return _program(args) if args.action == "program" else _status(args)


def main(argv: Optional[list[str]] = None) -> int:
    """Dispatch ``cim program | status | reproduce``."""
    args = list(argv or [])
    if not args or args[0] in ("-h", "--help"):
        print("usage: assistant cim {program,status,reproduce} ...   (assistant cim ACTION --help)")
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
