"""``assistant personalize PATH... [--watch]``: index notes folders (incrementally), show
progress and a summary; with ``--watch``, keep the index current as files are saved."""
from __future__ import annotations

import sys

from assistant.knowledge.cli_common import parser_for, run_verb, settings_from
from assistant.knowledge.indexer import Indexer
from assistant.knowledge.report import format_report


def main(argv: list[str] | None = None) -> int:
    """CLI entry point; returns the exit status."""
    parser = parser_for("assistant personalize", "Index notes folders for retrieval (RAG).")
    parser.add_argument("paths", nargs="+", metavar="PATH", help="folders (or files) of notes")
    parser.add_argument("--watch", action="store_true", help="keep watching and re-index saved files")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)

    def body() -> int:
        settings = settings_from(args)
        indexer = Indexer(settings, progress=not args.quiet and sys.stderr.isatty())
        print(format_report(indexer.run(args.paths)), flush=True)
        if args.watch:
            from assistant.knowledge.watch import watch

            watch(indexer, args.paths)
        return 0

    return run_verb(body)


if __name__ == "__main__":
    raise SystemExit(main())
