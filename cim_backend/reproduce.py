"""Reproduce the TSB comparison: ``python -m cim_backend.reproduce [--quick] --out DIR``.

Trains a LeNet on scikit-learn's digits, deploys it on simulated chips with four methods
(plain, noise injection, NI + selective write-verify, TSB) at several variation sigmas, and
writes ``DIR/results.json``, ``DIR/results.md`` and ``DIR/accuracy_vs_sigma.png``.
``--quick`` shrinks epochs, chips and the sweep so the run takes well under two minutes; its
numbers are a smoke test, not a measurement.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

from .calibration import CalibrationConfig
from .config import get_preset
from .data import load_digits_split
from .errors import CIMError
from .experiment import MethodSettings, run_all_methods, train_plain
from .models import lenet_digits
from .report import write_outputs

# Full training = 30 epochs: noise-injection chip accuracy stops improving there (measured at
# sigma 0.1, 40 chips: 92.7% after 10 epochs, 97.8% after 30, 97.9% after 45, 97.9% after 90).
FULL = MethodSettings(chips=100, epochs_full=30, epochs_early=10, calibration=CalibrationConfig(steps=150, batch_size=64))
QUICK = MethodSettings(
    chips=4, epochs_full=4, epochs_early=2, reference_runs=1, calibration=CalibrationConfig(steps=10, batch_size=32)
)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m cim_backend.reproduce", description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, type=Path, help="output directory")
    p.add_argument("--quick", action="store_true", help="tiny smoke-test run (< 2 min)")
    p.add_argument("--chips", type=int, help="chips per method and sigma (full: 100)")
    p.add_argument("--sigma", type=float, default=0.1, help="main variation sigma (fraction of range)")
    p.add_argument("--sweep", type=float, nargs="*", help="sigmas for the plot (main sigma always included)")
    p.add_argument("--preset", default="rram-4b", help="CIM configuration preset")
    p.add_argument("--tsb-width", type=int, help="TSB width k (k*k crossbar weights)")
    p.add_argument("--epochs-full", type=int, help="epochs of full training (plain and noise injection)")
    p.add_argument("--epochs-early", type=int, help="noise-injection epochs of the TSB backbone")
    p.add_argument("--calib-steps", type=int, help="TSB calibration steps per chip")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1: steady timings on a shared machine; 0: torch default)")
    p.add_argument("--seed", type=int, default=0)
    return p


def _settings(args: argparse.Namespace) -> MethodSettings:
    s = QUICK if args.quick else FULL
    s = replace(s, seed=args.seed)
    if args.chips:
        s = replace(s, chips=args.chips)
    if args.tsb_width:
        s = replace(s, tsb_width=args.tsb_width)
    if args.epochs_full:
        s = replace(s, epochs_full=args.epochs_full)
    if args.epochs_early:
        s = replace(s, epochs_early=args.epochs_early)
    if args.calib_steps:
        s = replace(s, calibration=replace(s.calibration, steps=args.calib_steps))
    return s


def run(args: argparse.Namespace) -> dict:
    """Run the comparison described by parsed ``args`` (torch threads restored afterwards)."""
    previous = torch.get_num_threads()
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        return _run(args)
    finally:
        torch.set_num_threads(previous)


def _run(args: argparse.Namespace) -> dict:
    settings = _settings(args)
    base_cfg = get_preset(args.preset)
    default_sweep = [0.1, 0.2] if args.quick else [0.05, 0.1, 0.15, 0.2]
    sigmas = sorted(set(args.sweep if args.sweep is not None else default_sweep) | {args.sigma})
    split = load_digits_split(seed=args.seed)
    torch.manual_seed(args.seed)
    backbone = lenet_digits()
    start = time.perf_counter()
    plain = train_plain(backbone, split, settings)
    sweep = {}
    for sigma in sigmas:
        sweep[sigma] = run_all_methods(backbone, plain, split, base_cfg.with_sigma(sigma), settings)
        gaps = ", ".join(f"{k}={v.gap:+.4f}" for k, v in sweep[sigma].items())
        print(f"sigma={sigma}: {gaps}", flush=True)
    meta = {
        "preset": args.preset,
        "quick": bool(args.quick),
        "settings": repr(settings),
        "wall_seconds": time.perf_counter() - start,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "machine": platform.platform(),
        "command": "python -m cim_backend.reproduce " + " ".join(sys.argv[1:]),
    }
    return write_outputs(args.out, args.sigma, sweep, settings.chips, meta)


def main(argv: list[str] | None = None) -> int:
    """CLI entry point; returns a process exit code."""
    args = _parser().parse_args(argv)
    try:
        results = run(args)
    except CIMError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print((args.out / "results.md").read_text())
    print(f"wrote {args.out / 'results.json'}, {args.out / 'results.md'}, {args.out / 'accuracy_vs_sigma.png'}")
    return 0 if results else 1


if __name__ == "__main__":
    raise SystemExit(main())
