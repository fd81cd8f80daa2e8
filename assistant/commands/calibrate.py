"""``assistant calibrate``: measure every strategy on probes built from your notes, on
this device, and store the router's calibration table (``$ASSISTANT_HOME/router/``)."""
from __future__ import annotations

import argparse
import json
import sys
from typing import Optional

from assistant.commands.common import add_settings_flags, cli_errors, settings_from_args
from assistant.profiles import resolve_profile


def print_table(rows: list[list[str]], out=sys.stdout) -> None:
    """The calibration cells as aligned columns."""
    header = ["difficulty", "strategy", "model", "n", "accuracy", "latency_s"]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  " + "  ".join(cell.ljust(width) for cell, width in zip(row, widths)), file=out)


@cli_errors
def main(argv: Optional[list[str]] = None) -> int:
    """Run the calibration and print the table."""
    from tqdm import tqdm

    from assistant.study.calibrate import PROBES_PER_LEVEL, run_calibration

    parser = argparse.ArgumentParser(prog="assistant calibrate", description=__doc__)
    parser.add_argument("--probes", type=int, default=PROBES_PER_LEVEL, help="probes per difficulty level")
    parser.add_argument("--also-model", action="append", default=[], metavar="MODEL",
                        help="also measure base/rag on this catalog model (e.g. gemma3-270m); repeatable")
    parser.add_argument("--budget", type=float, default=None, metavar="SECONDS",
                        help="start no new probe after this many seconds (levels are measured in turn)")
    parser.add_argument("--json", action="store_true", help="print the table as JSON")
    add_settings_flags(parser, ["profile", "home", "model", "n_ctx", "n_threads"])
    args = parser.parse_args(argv)
    settings = settings_from_args(args)
    profile = resolve_profile(settings.profile, settings.profiles_dir, settings.system_root)
    bar = tqdm(total=0, unit="answer", desc="calibrating", disable=args.json, file=sys.stderr)

    def progress(event: dict) -> None:
        bar.total = event["total"]
        bar.set_postfix_str(f"{event['level']} {event['strategy']}")
        bar.update(1)

    table = run_calibration(settings, profile, args.probes, args.also_model, progress, budget_s=args.budget)
    bar.close()
    if args.json:
        print(json.dumps(table.as_dict(), indent=2))
        return 0
    print(f"calibration for {table.model} on profile {table.profile} "
          f"({table.notes.get('probes')} probes, adapter {table.notes.get('adapter') or 'none'}{table.cut_short})")
    print_table(table.rows())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
