"""``assistant sources``: the indexed folders with their document and chunk counts."""
from __future__ import annotations

import time

from assistant.knowledge.cli_common import parser_for, run_verb, settings_from
from assistant.knowledge.sources import list_sources


def main(argv: list[str] | None = None) -> int:
    """CLI entry point; returns the exit status."""
    parser = parser_for("assistant sources", "List the indexed notes folders.")
    args = parser.parse_args(argv)

    def body() -> int:
        sources = list_sources(settings_from(args))
        if not sources:
            print("no sources: run `assistant personalize PATH` to index a folder")
            return 0
        for source in sources:
            when = time.strftime("%Y-%m-%d %H:%M", time.localtime(source["indexed_at"] or 0))
            print(f"{source['path']}  documents: {source['documents']}  chunks: {source['chunks']}  "
                  f"skipped: {source['skipped']}  indexed: {when}")
        return 0

    return run_verb(body)


if __name__ == "__main__":
    raise SystemExit(main())
