"""``assistant doctor``: check this device, the model, the index, adapters and the server.
Each check prints ok, warn or fail with one line; any fail makes the exit status 1."""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Optional

from assistant.commands.common import add_settings_flags, cli_errors, settings_from_args
from assistant.doctor import FAIL, OK, WARN, registry, run_checks
from assistant.settings import Settings

MARKS = {OK: "[ ok ]", WARN: "[warn]", FAIL: "[FAIL]"}


def settings_with_env_file(args: argparse.Namespace) -> Settings:
    """Settings from flags, then env vars, then ``--env-file`` (e.g. the service's
    /etc/assistant/assistant.env), then defaults."""
    return settings_from_args(args) if args.env_file is None else settings_from_args(args, _env_file=args.env_file)


@cli_errors
def main(argv: Optional[list[str]] = None) -> int:
    """Run the checks and print them (or JSON); exit 1 if any fails."""
    parser = argparse.ArgumentParser(prog="assistant doctor", description=__doc__)
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument("--check", action="append", choices=list(registry()), metavar="NAME",
                        help=f"run only this check (repeatable): {', '.join(registry())}")
    parser.add_argument("--env-file", type=Path, default=None,
                        help="read ASSISTANT_* settings from this file, e.g. /etc/assistant/assistant.env")
    add_settings_flags(parser, ["home", "profile", "model", "host", "port", "n_ctx", "system_root", "profiles_dir"])
    args = parser.parse_args(argv)
    if args.env_file is not None and not args.env_file.is_file():
        parser.error(f"--env-file {args.env_file} does not exist")
    results = run_checks(settings_with_env_file(args), args.check)
    failed = sum(result.status == FAIL for result in results)
    if args.json:
        print(json.dumps({"ok": failed == 0, "checks": [result.as_dict() for result in results]}, indent=2))
        return 1 if failed else 0
    width = max(len(result.name) for result in results)
    for result in results:
        print(f"{MARKS[result.status]} {result.name.ljust(width)}  {result.summary}")
    counts = {status: sum(result.status == status for result in results) for status in (OK, WARN, FAIL)}
    print(f"\n{counts[OK]} ok, {counts[WARN]} warn, {counts[FAIL]} fail")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
