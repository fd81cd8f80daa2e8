"""``assistant personalize PATH... [--learn rag|adapter|auto] [--watch]``: index notes
folders (incrementally), show progress and a summary; with ``--learn adapter`` (or ``auto``,
when the profile and the amount of notes allow) also train a LoRA adapter under the time
budget, then recalibrate the router; with ``--watch``, keep the index current."""
from __future__ import annotations

import argparse
import sys
from typing import Optional

from assistant.commands.common import add_settings_flags, cli_errors, settings_from_args
from assistant.commands.learn import add_learn_flags
from assistant.knowledge.indexer import Indexer
from assistant.knowledge.report import format_report


def build_parser() -> argparse.ArgumentParser:
    """The verb's flags: what to index, what to learn, and the shared settings."""
    parser = argparse.ArgumentParser(prog="assistant personalize",
                                     description="Index notes folders for retrieval (RAG).")
    parser.add_argument("paths", nargs="+", metavar="PATH", help="folders (or files) of notes")
    parser.add_argument("--watch", action="store_true", help="keep watching and re-index saved files")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--learn", choices=["rag", "adapter", "auto"], default="rag",
                        help="rag: index only (default, fast); adapter: also train an adapter; "
                             "auto: train when the profile allows it and there are enough notes")
    parser.add_argument("--calibrate", action="store_true",
                        help="recalibrate the router after indexing (always done after --learn adapter/auto)")
    parser.add_argument("--calibration-budget", type=float, default=None, metavar="SECONDS",
                        help="start no new calibration probe after this many seconds (default: measure them all)")
    add_learn_flags(parser)
    add_settings_flags(parser, ["home", "profile", "model", "n_threads", "follow_symlinks"])
    return parser


@cli_errors
def main(argv: Optional[list[str]] = None) -> int:
    """CLI entry point; returns the exit status."""
    args = build_parser().parse_args(argv)
    settings = settings_from_args(args)
    indexer = Indexer(settings, progress=not args.quiet and sys.stderr.isatty(), n_threads=settings.n_threads)
    print(format_report(indexer.run(args.paths)), flush=True)
    if args.learn != "rag" or args.calibrate:
        from assistant.commands.learn_after_index import learn_and_calibrate  # torch only on this path

        learn_and_calibrate(settings, args, quiet=args.quiet)
    if args.watch:
        from assistant.knowledge.watch import watch

        watch(indexer, args.paths)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
