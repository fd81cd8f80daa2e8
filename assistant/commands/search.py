"""``assistant search "query" [-k N]``: the ranked passages of a hybrid search, one per
line as ``path:start-end  heading  score``."""
from __future__ import annotations

import argparse
import json
from typing import Optional

from assistant.commands.common import add_settings_flags, cli_errors, settings_from_args
from assistant.knowledge.base import KnowledgeBase


def format_hit(passage) -> str:
    """``path:start-end  heading  score`` (heading ``-`` when there is none)."""
    return f"{passage.path}:{passage.start_line}-{passage.end_line}  {passage.heading or '-'}  {passage.score:.4f}"


@cli_errors
def main(argv: Optional[list[str]] = None) -> int:
    """CLI entry point; returns the exit status."""
    parser = argparse.ArgumentParser(prog="assistant search",
                                     description="Search the indexed notes (vectors + BM25, fused).")
    parser.add_argument("query", help="what to look for")
    parser.add_argument("-k", type=int, default=5, help="how many passages (default 5)")
    parser.add_argument("--text", action="store_true", help="also print each passage's text")
    parser.add_argument("--json", action="store_true", help="print JSON instead of lines")
    add_settings_flags(parser, ["home", "profile"])
    args = parser.parse_args(argv)
    with KnowledgeBase.open(settings_from_args(args)) as kb:
        if kb.is_empty():
            print("the index is empty: run `assistant personalize PATH` first")
            return 0
        passages = kb.search(args.query, args.k)
    if args.json:
        print(json.dumps([p.as_dict() for p in passages], indent=2))
        return 0
    for passage in passages:
        print(format_hit(passage))
        if args.text:
            print("    " + passage.text.replace("\n", "\n    "))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
