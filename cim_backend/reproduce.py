"""Reproduce the TSB comparison: ``python -m cim_backend.reproduce [--quick] --out DIR``.

5-fold cross-fitting over scikit-learn's 1,797 digits (every image tested once; folds serve as
seeds), a LeNet and a VGG-style network, simulated chips with a 6-bit ADC, clipped
conductances and stuck-at faults; plain training, noise injection, selective write-verify
over a sweep of budgets, TSB and its ablations, per-chip bias and last-layer fitting; every
hyperparameter chosen on a validation split. Writes ``DIR/results.json``, ``DIR/report.md``
and PNG plots. Finished folds are kept under ``DIR/folds/`` and reused by a rerun with the
same settings (an interrupted run resumes). ``--quick`` is a smoke test (under a minute),
not a measurement.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import pickle
import platform
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

import torch

from .chip_tuning import FitConfig
from .errors import CIMError
from .folds import cross_fit_folds
from .models import NETWORKS
from .report import write_report
from .tsb_results import aggregate_sigma
from .tsb_study import FoldRunner, StudySettings

FULL = StudySettings()
QUICK = StudySettings(
    fold_limit=1, chips=3, val_chips=2, sigmas=(0.1,), plain_epochs=(3,), ni_epochs=(2, 3), tsb_backbone_epochs=(2,),
    tsb_widths=(4, 8), fit=FitConfig(checkpoints=(5, 10), batch_size=32), budgets=(1, 5), selections=("magnitude", "random"),
    drift_seconds=(86_400.0,),
)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m cim_backend.reproduce", description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, type=Path, help="output directory")
    p.add_argument("--quick", action="store_true", help="smoke-test run (under a minute)")
    p.add_argument("--network", choices=[*NETWORKS, "both"], default="both", help="which network (default: both)")
    p.add_argument("--chips", type=int, help="test chips per fold (full: 16)")
    p.add_argument("--folds", type=int, help="run only the first N of the 5 folds")
    p.add_argument("--sigma", type=float, nargs="*", help="variation sigmas (full: 0.05 0.1 0.15 0.2)")
    p.add_argument("--preset", help="CIM configuration preset (default rram-4b)")
    p.add_argument("--adc-bits", type=int, help="ADC bits (default 6; 0 = ideal ADC)")
    p.add_argument("--stuck-rate", type=float, help="stuck-on and stuck-off rate each (default 0.001)")
    p.add_argument("--replicates", type=int, default=2000, help="bootstrap replicates")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1; 0: torch default)")
    return p


def settings_from(args: argparse.Namespace) -> StudySettings:
    """The study settings for parsed ``args``."""
    s = QUICK if args.quick else FULL
    if args.chips:
        s = replace(s, chips=args.chips)
    if args.folds:
        s = replace(s, fold_limit=args.folds)
    if args.sigma:
        s = replace(s, sigmas=tuple(sorted(set(args.sigma))))
        if s.main_sigma not in s.sigmas:
            s = replace(s, main_sigma=s.sigmas[len(s.sigmas) // 2])
    if args.preset:
        s = replace(s, preset=args.preset)
    if args.adc_bits is not None:
        s = replace(s, adc_bits=args.adc_bits or None)
    if args.stuck_rate is not None:
        s = replace(s, stuck_rate=args.stuck_rate)
    s.config(s.main_sigma)  # validates the preset and rates before any work
    return s


def _key(settings: StudySettings, network: str) -> str:
    """Names a fold's file by what decides its figures: the settings as they apply to ``network``."""
    own = replace(settings, extended=(network,) if network in settings.extended else (), sweep=(network,) if network in settings.sweep else ())
    return hashlib.sha256(f"{network}|{own!r}".encode()).hexdigest()[:12]


def run_fold(network: str, fold, settings: StudySettings, folder: Path) -> dict:
    """One fold of one network, loaded from ``folder`` when a run with these settings finished it."""
    path = folder / f"{network}-fold{fold.index}-{_key(settings, network)}.pkl"
    if path.exists():
        print(f"  {network} fold {fold.index}: reusing {path.name}", flush=True)
        return pickle.loads(path.read_bytes())
    start = time.perf_counter()
    runner = FoldRunner(network, fold, settings, log=lambda m: print(m, flush=True))
    reference = runner.reference()
    extended = network in settings.extended
    sigmas = settings.sigmas if network in settings.sweep else (settings.main_sigma,)
    result = {"reference": reference, "sigmas": {s: runner.run_sigma(s, extended) for s in sigmas}}
    result["adc_timing"] = runner.adc_timing
    result["seconds"] = time.perf_counter() - start
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(pickle.dumps(result))
    tmp.replace(path)  # atomic: a fold file is complete or absent
    return result


def aggregate(network: str, folds: list[dict], settings: StudySettings, replicates: int) -> dict:
    """Figures with intervals for one network over its folds."""
    refs = [f["reference"]["correct"] for f in folds]
    out = {
        "weights": folds[0]["reference"]["weights"],
        "reference_epochs": [f["reference"]["epochs"] for f in folds],
        "adc_timing": folds[0]["adc_timing"],
        "fold_seconds": [f["seconds"] for f in folds],
        "sigmas": {},
    }
    for sigma in folds[0]["sigmas"]:
        out["sigmas"][str(sigma)] = aggregate_sigma([f["sigmas"][sigma] for f in folds], refs, settings.config(sigma), replicates, seed=0)
    return out


def run(args: argparse.Namespace) -> dict:
    """Run the study described by parsed ``args`` (torch threads restored afterwards)."""
    settings = settings_from(args)
    previous = torch.get_num_threads()
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        start = time.perf_counter()
        networks = list(NETWORKS) if args.network == "both" else [args.network]
        folder = args.out / "folds"
        folder.mkdir(parents=True, exist_ok=True)
        folds = cross_fit_folds(settings.folds, limit=settings.fold_limit)
        results = {"networks": {}}
        for network in networks:
            done = [run_fold(network, fold, settings, folder) for fold in folds]
            results["networks"][network] = aggregate(network, done, settings, args.replicates)
        cfg = settings.config(settings.main_sigma)
        results["settings"] = {**{k: v for k, v in asdict(settings).items()}, "config": repr(cfg)}
        results["meta"] = {
            "quick": bool(args.quick),
            "wall_seconds": time.perf_counter() - start,
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "machine": platform.platform(),
            "cpu": _cpu_model(),
            "command": "python -m cim_backend.reproduce " + " ".join(sys.argv[1:]),
        }
        write_report(args.out, results)
        return results
    finally:
        torch.set_num_threads(previous)


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main(argv: list[str] | None = None) -> int:
    """CLI entry point; returns a process exit code."""
    args = _parser().parse_args(argv)
    try:
        run(args)
    except CIMError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print((args.out / "report.md").read_text())
    print(f"wrote {args.out / 'results.json'}, {args.out / 'report.md'} and plots in {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
