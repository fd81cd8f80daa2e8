"""``assistant sources``: the indexed folders with their document and chunk counts."""
from __future__ import annotations

import argparse
import time
from typing import Optional

from assistant.commands.common import add_settings_flags, cli_errors, settings_from_args
from assistant.knowledge.sources import list_sources


@cli_errors
def main(argv: Optional[list[str]] = None) -> int:
    """CLI entry point; returns the exit status."""
    parser = argparse.ArgumentParser(prog="assistant sources", description="List the indexed notes folders.")
    add_settings_flags(parser, ["home", "profile"])
    args = parser.parse_args(argv)
    sources = list_sources(settings_from_args(args))
    if not sources:
        print("no sources: run `assistant personalize PATH` to index a folder")
        return 0
    for source in sources:
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(source["indexed_at"] or 0))
        print(f"{source['path']}  documents: {source['documents']}  chunks: {source['chunks']}  "
              f"skipped: {source['skipped']}  indexed: {when}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
