"""Reproduce the TSB comparison: ``python -m cim_backend.reproduce [--quick] --out DIR``.

5-fold cross-fitting over scikit-learn's 1,797 digits (every image tested once; folds serve as
seeds), a LeNet and a VGG-style network, simulated chips with a 6-bit ADC, clipped
conductances and stuck-at faults; plain training, noise injection, selective write-verify
over a sweep of budgets, TSB and its ablations, per-chip bias and last-layer fitting; every
hyperparameter chosen on a validation split. Writes ``DIR/results.json``, ``DIR/report.md``
and PNG plots. Finished folds are kept under ``DIR/folds/`` and reused by a rerun with the
same settings (an interrupted run resumes). The folds (network x fold) are independent
cells: they run serially by default, on ``--workers N`` local Dask processes, or on a Dask
cluster at ``--address`` (the optional ``cluster`` extra), with the same results for the same
settings. ``--quick`` is a smoke test (under a minute), not a measurement.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import pickle
import platform
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
from tqdm import tqdm

from cellrunner import CellRunnerError, Cluster, run_cells

from .chip_tuning import FitConfig
from .errors import CIMError
from .folds import Fold, cross_fit_folds
from .models import NETWORKS
from .report import write_report
from .tsb_results import aggregate_sigma
from .results_keys import add_result_keys
from .tsb_goals import add_goals
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
    p.add_argument("--chips", type=int, help="test chips per fold (full: 20, i.e. 100 over the 5 folds)")
    p.add_argument("--folds", type=int, help="run only the first N of the 5 folds")
    p.add_argument("--sigma", type=float, nargs="*", help="variation sigmas (full: 0.05 0.1 0.15 0.2)")
    p.add_argument("--preset", help="CIM configuration preset (default rram-4b)")
    p.add_argument("--adc-bits", type=int, help="ADC bits (default 6; 0 = ideal ADC)")
    p.add_argument("--stuck-rate", type=float, help="stuck-on and stuck-off rate each (default 0.001)")
    p.add_argument("--replicates", type=int, default=2000, help="bootstrap replicates")
    p.add_argument("--threads", type=int, default=1, help="torch threads per fold (default 1; 0: torch default)")
    p.add_argument("--workers", type=int, default=0, help="run folds on N local Dask worker processes (default: serially)")
    p.add_argument("--address", help="run folds on a running Dask scheduler, e.g. tcp://10.0.0.5:8786")
    p.add_argument("--render-only", action="store_true",
                   help="rewrite report.md, the goals and the plots from DIR/results.json without running anything")
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


@dataclass(frozen=True)
class FoldCell:
    """One independent cell of the study: every method and sigma on one fold of one network
    (they share the fold's trained models, so a fold is the unit of work; folds are the seeds)."""

    network: str
    fold: Fold
    settings: StudySettings
    threads: int = 1

    def path(self, folder: Path) -> Path:
        """Where this cell's result is kept once finished."""
        return folder / f"{self.network}-fold{self.fold.index}-{_key(self.settings, self.network)}.pkl"


def compute_fold(cell: FoldCell) -> dict:
    """Run one fold of one network (in this process or on a Dask worker); deterministic for a
    given cell, so the result is the same wherever it runs."""
    previous = torch.get_num_threads()
    if cell.threads:
        torch.set_num_threads(cell.threads)
    try:
        start = time.perf_counter()
        settings, network = cell.settings, cell.network
        runner = FoldRunner(network, cell.fold, settings, log=lambda m: print(m, flush=True))
        reference = runner.reference()
        extended = network in settings.extended
        sigmas = settings.sigmas if network in settings.sweep else (settings.main_sigma,)
        result = {"reference": reference, "sigmas": {s: runner.run_sigma(s, extended) for s in sigmas}}
        result["adc_timing"] = runner.adc_timing
        result["seconds"] = time.perf_counter() - start
        return result
    finally:
        torch.set_num_threads(previous)


def run_folds(cells: list[FoldCell], folder: Path, cluster: Cluster) -> dict[tuple[str, int], dict]:
    """Every cell's result: those a run with the same settings finished are loaded from
    ``folder``, the others computed through ``cluster`` and stored (atomically) as they finish."""
    done: dict[tuple[str, int], dict] = {}
    todo = []
    for cell in cells:
        path = cell.path(folder)
        if path.exists():
            print(f"  {cell.network} fold {cell.fold.index}: reusing {path.name}", flush=True)
            done[(cell.network, cell.fold.index)] = pickle.loads(path.read_bytes())
        else:
            todo.append(cell)
    if todo:
        print(f"running {len(todo)} fold(s) {cluster.describe()}", flush=True)
    bar = tqdm(total=len(cells), initial=len(cells) - len(todo), desc="folds", unit="fold", file=sys.stderr)

    def store(cell: FoldCell, result: dict) -> None:
        path = cell.path(folder)
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(pickle.dumps(result))
        tmp.replace(path)  # atomic: a fold file is complete or absent
        done[(cell.network, cell.fold.index)] = result
        bar.update(1)

    try:
        run_cells(compute_fold, todo, cluster, on_result=store)
    finally:
        bar.close()
    return done


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
        cluster = Cluster(workers=args.workers, address=args.address)
        cells = [FoldCell(network, fold, settings, args.threads) for network in networks for fold in folds]
        done = run_folds(cells, folder, cluster)
        results = {"networks": {}}
        for network in networks:
            ordered = [done[(network, fold.index)] for fold in folds]
            results["networks"][network] = aggregate(network, ordered, settings, args.replicates)
        cfg = settings.config(settings.main_sigma)
        results["settings"] = {**{k: v for k, v in asdict(settings).items()}, "config": repr(cfg)}
        results["meta"] = {
            "quick": bool(args.quick),
            "wall_seconds": time.perf_counter() - start,
            "torch": torch.__version__,
            "threads": args.threads or torch.get_num_threads(),
            "ran": cluster.describe(),
            "machine": platform.platform(),
            "cpu": _cpu_model(),
            "command": "python -m cim_backend.reproduce " + " ".join(sys.argv[1:]),
        }
        publish(args.out, results)
        return results
    finally:
        torch.set_num_threads(previous)


def publish(out: Path, results: dict) -> dict:
    """Add the derived keys and the goal checks to ``results`` and write every output into ``out``."""
    write_report(out, add_goals(add_result_keys(results)))
    return results


def rerender(out: Path) -> dict:
    """Rewrite ``out``'s report, goals and plots from its ``results.json`` (the figures as
    they were measured; only their presentation and the goal checks are recomputed)."""
    path = out / "results.json"
    try:
        results = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise CIMError(f"cannot read {path}: {exc}") from exc
    return publish(out, results)


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
        if args.render_only:
            rerender(args.out)
        else:
            run(args)
    except (CIMError, CellRunnerError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print((args.out / "report.md").read_text())
    print(f"wrote {args.out / 'results.json'}, {args.out / 'report.md'} and plots in {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
