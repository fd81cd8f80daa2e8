"""``assistant forget PATH``: remove an indexed folder from SQLite, FTS and the vectors.
The notes themselves are never touched."""
from __future__ import annotations

import argparse
from typing import Optional

from assistant.commands.common import add_settings_flags, cli_errors, settings_from_args
from assistant.knowledge.sources import forget_source


@cli_errors
def main(argv: Optional[list[str]] = None) -> int:
    """CLI entry point; returns the exit status."""
    parser = argparse.ArgumentParser(prog="assistant forget", description="Remove an indexed folder from the index.")
    parser.add_argument("path", metavar="PATH", help="a folder listed by `assistant sources`")
    add_settings_flags(parser, ["home", "profile"])
    args = parser.parse_args(argv)
    removed = forget_source(settings_from_args(args), args.path)
    print(f"forgot {removed['path']}: {removed['documents']} documents, {removed['chunks']} chunks")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
