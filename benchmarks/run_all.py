"""Every benchmark, one report: ``make bench`` (full, under an hour here) writes
benchmarks/RESULTS.md, its plots under benchmarks/plots/ and its JSON under benchmarks/data/; ``make bench-quick`` (about two
minutes) writes the same sections from the --quick modes under benchmarks/results/quick/.

    .venv/bin/python benchmarks/run_all.py [--quick] [--out DIR] [--only SECTION,...]

Each section's benchmarks run in their own process, one after another (they share the
cores, so nothing else should run meanwhile); a run that fails is reported in its section
with the tail of its stderr, the other sections still run, and the exit status says so.
"""
from __future__ import annotations

import argparse
import datetime
import importlib
import json
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.report.common import machine  # noqa: E402

# The report's order; each name is a module in benchmarks/report/.
SECTIONS = ["generation", "prefill", "bandwidth", "memory", "retrieval", "learning", "cim", "scaling",
            "long_runs"]
RUN_TIMEOUT_S = 3600
MADE = "_made"  # the key of runs.json that says when and at which commit the benchmarks ran


def run_section(name: str, quick: bool, results: Path) -> list[dict]:
    """Run a section's benchmark commands; what each took, how it ended, at which commit."""
    section = importlib.import_module(f"benchmarks.report.{name}")
    runs = []
    commit = head_commit()
    for argv in section.commands(quick, results):
        started = time.monotonic()
        print(f"[{name}] {' '.join(argv)}", file=sys.stderr, flush=True)
        try:
            done = subprocess.run([sys.executable, *argv], cwd=REPO, capture_output=True, text=True,
                                  timeout=RUN_TIMEOUT_S)
            code, tail = done.returncode, done.stderr[-2000:]
        except subprocess.TimeoutExpired as exc:
            code, tail = -1, f"timed out after {RUN_TIMEOUT_S} s: {str(exc.stderr or '')[-1500:]}"
        runs.append({"command": "python " + " ".join(argv), "seconds": round(time.monotonic() - started, 1),
                     "returncode": code, "stderr_tail": tail if code else "", "commit": commit,
                     "date": datetime.date.today().isoformat(), "machine": machine()})
    return runs


def render_section(index: int, name: str, results: Path, plots: Path, runs: list[dict], made_at: str,
                   made_on: dict | None = None) -> str:
    """One numbered section: its markdown, then how it was made (with the commit and date of
    a run made later than the report's ``made_at`` commit, by --only, and its machine where
    that is not ``made_on``, the whole run's)."""
    section = importlib.import_module(f"benchmarks.report.{name}")
    try:
        body = section.render(results, plots)
    except Exception as exc:  # a broken renderer must not lose the rest of the report
        body = f"**The section could not be rendered**: {type(exc).__name__}: {exc}"
    lines = [f"## {index}. {section.TITLE}", "", body.strip(), ""]
    for run in runs:
        status = "ok" if run["returncode"] == 0 else f"**failed (exit {run['returncode']})**"
        command = run["command"].replace(f"{REPO}/", "")  # the report is read in other checkouts
        elsewhere = run.get("machine") and made_on and run["machine"] != made_on
        on = f" on another machine: {machine_line(run['machine'])}" if elsewhere else ""
        later = f" (run again at commit `{run['commit']}` on {run['date']}{on})" \
            if run.get("commit", made_at) != made_at else ""
        lines.append(f"- `{command}`: {run['seconds']:.0f} s, {status}{later}")
        if run["returncode"]:
            lines += ["", "```", run["stderr_tail"].strip()[-1200:], "```"]
    return "\n".join(lines) + "\n"


def head_commit() -> str:
    """The checkout's commit, short."""
    return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                          text=True).stdout.strip() or "unknown"


def made(started: float, total_s: float) -> dict:
    """When, where and at which commit the benchmarks ran, and how long they took."""
    return {"commit": head_commit(), "date": datetime.date.fromtimestamp(started).isoformat(),
            "minutes": total_s / 60, "machine": machine()}


def machine_line(facts: dict) -> str:
    """CPU, cores, SIMD, memory and Python, as the report names a machine."""
    return (f"{facts['cpu']}, {facts['cores']} cores ({', '.join(facts['simd']) or 'no SIMD flags read'}), "
            f"{facts['memory_gib']} GiB, Python {facts['python']}")


def header(quick: bool, run: dict) -> str:
    """Title, how and when the whole run was made, and its machine (this one if not recorded)."""
    mode = "`make bench-quick` (smoke figures, not for quoting)" if quick else "`make bench`"
    return "\n".join([
        "# Benchmark results", "",
        f"Made by {mode} at commit `{run['commit']}` on {run['date']}, "
        + (f"in {run['minutes']:.1f} minutes." if run.get("minutes") is not None else "in a time not recorded."), "",
        f"Machine: {machine_line(run.get('machine') or machine())}. Absolute figures are this machine's, except "
        "where a section run again names another; comparisons are ratios measured in the same run, runs "
        "interleaved where the section says so.", ""])


def main(argv: list[str] | None = None) -> int:
    """Run the sections and write the report; exit 1 if any benchmark run failed."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path, help="report folder (default: benchmarks, or benchmarks/results/quick)")
    parser.add_argument("--only", help="comma-separated sections to run (the others are rendered from "
                                       "the JSON already in the results folder)")
    parser.add_argument("--render-only", action="store_true", help="run nothing; render from existing JSON")
    args = parser.parse_args(argv)
    out = args.out or (REPO / "benchmarks" / ("results/quick" if args.quick else ""))
    results = out / "data"  # the JSON behind the report, kept beside it
    plots = out / "plots"
    results.mkdir(parents=True, exist_ok=True)
    chosen = set(args.only.split(",")) if args.only else set(SECTIONS)
    log_path = results / "runs.json"
    log = json.loads(log_path.read_text()) if log_path.exists() else {}
    started = time.time()
    for name in SECTIONS:
        if name in chosen and not args.render_only:
            log[name] = run_section(name, args.quick, results)
            log_path.write_text(json.dumps(log, indent=2))
    # A later --render-only keeps saying when the figures were made; an --only run into a
    # report that has a whole run keeps that run's header (its own runs name their commit).
    if not args.render_only and not (args.only and MADE in log):
        log[MADE] = made(started, time.time() - started)
        log_path.write_text(json.dumps(log, indent=2))
    # JSON from before runs.json kept MADE: today's commit and date, and no duration to claim
    run = log.get(MADE) or {**made(started, 0.0), "minutes": None}
    body = [render_section(i + 1, name, results, plots, log.get(name, []), run["commit"], run.get("machine"))
            for i, name in enumerate(SECTIONS)]
    report = header(args.quick, run) + "\n" + "\n".join(body)
    (out / "RESULTS.md").write_text(report)
    print(f"wrote {out / 'RESULTS.md'}", file=sys.stderr)
    failed = [name for name in chosen if any(run["returncode"] for run in log.get(name, []))]
    if failed:
        print(f"failed: {', '.join(sorted(failed))}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
