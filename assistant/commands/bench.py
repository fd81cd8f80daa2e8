"""``assistant bench study``: the edge-deployment guidelines' trade-off study, on this
device and your indexed notes. Writes study.csv, study.md and PNG plots under
``$ASSISTANT_HOME/reports/``."""
from __future__ import annotations

import argparse
import sys
import time
from typing import Optional

from assistant.commands.common import add_settings_flags, cli_errors, settings_from_args
from assistant.errors import InvalidRequestError
from assistant.profiles import resolve_profile
from assistant.router.plan import Strategy


def _budgets(text: str) -> dict[str, float]:
    pairs = [part.split("=", 1) for part in text.split(",") if part]
    try:
        return {label: float(seconds) for label, seconds in pairs}
    except ValueError as exc:
        raise InvalidRequestError(f"--budgets wants LABEL=SECONDS,... not '{text}'", param="budgets") from exc


def _parser() -> argparse.ArgumentParser:
    """The command line of ``assistant bench``."""
    parser = argparse.ArgumentParser(prog="assistant bench", description=__doc__)
    sub = parser.add_subparsers(dest="bench", required=True)
    study = sub.add_parser("study", help="method x data x model x compression x budget x difficulty")
    study.add_argument("--quick", action="store_true", help="a tiny subset of the grid (for tests)")
    study.add_argument("--models", nargs="+", help="catalog models (default: smollm2-135m-instruct gemma3-270m)")
    study.add_argument("--data", nargs="+", type=int, help="data amounts in percent (default: 25 50 100)")
    study.add_argument("--compressions", nargs="+", choices=["shipped", "lower"])
    study.add_argument("--methods", nargs="+", choices=[s.value for s in Strategy if s != Strategy.AUTO])
    study.add_argument("--budgets", type=_budgets, help="training budgets, e.g. short=60,long=240")
    study.add_argument("--probes", type=int, help="probes per difficulty level")
    study.add_argument("--workers", type=int, default=0,
                       help="run the (model, compression) cells on N local Dask workers (the 'cluster' extra); "
                            "default: one after another in this process")
    study.add_argument("--address", help="run the cells on a running Dask scheduler, e.g. tcp://host:8786")
    add_settings_flags(study, ["profile", "home", "n_threads"])
    return parser


@cli_errors
def main(argv: Optional[list[str]] = None) -> int:
    """``bench study [--quick] [grid flags]``."""
    args = _parser().parse_args(argv)

    from cellrunner import CellRunnerError, Cluster
    from tqdm import tqdm

    from assistant.study.report import findings, write_reports
    from assistant.study.study import StudyGrid, clean_workdir, run_study, step_count

    try:
        cluster = Cluster(workers=args.workers, address=args.address)
    except CellRunnerError as exc:
        raise InvalidRequestError(str(exc), param="workers") from exc
    settings = settings_from_args(args)
    profile = resolve_profile(settings.profile, settings.profiles_dir, settings.system_root)
    grid = StudyGrid.quick() if args.quick else StudyGrid()
    for flag, attr in [("models", "models"), ("data", "data_pcts"), ("compressions", "compressions"),
                       ("methods", "methods"), ("budgets", "budgets"), ("probes", "probes_per_level")]:
        value = getattr(args, flag)
        if value:
            setattr(grid, attr, tuple(value) if isinstance(value, list) else value)
    print(f"study grid: {grid.describe()}; cells run {cluster.describe()}", file=sys.stderr)
    bar = tqdm(total=step_count(grid), desc="study", unit="cell", file=sys.stderr)

    def tick(label: str) -> None:
        bar.set_postfix_str(label[:60])
        bar.update(1)

    started = time.perf_counter()
    try:
        rows = run_study(settings, profile, grid, tick, cluster)
    except CellRunnerError as exc:
        raise InvalidRequestError(str(exc), param="address" if args.address else "workers") from exc
    bar.close()
    seconds = time.perf_counter() - started
    paths = write_reports(rows, grid, settings.layout.reports, f"profile {profile.name}, "
                          f"{profile.effective_threads()} threads", seconds)
    clean_workdir(settings)
    for line in findings(rows):
        print(line)
    for kind, path in paths.items():
        print(f"{kind}: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
