"""``assistant forget PATH``: remove an indexed folder from SQLite, FTS and the vectors.
The notes themselves are never touched."""
from __future__ import annotations

from assistant.knowledge.cli_common import parser_for, run_verb, settings_from
from assistant.knowledge.sources import forget_source


def main(argv: list[str] | None = None) -> int:
    """CLI entry point; returns the exit status."""
    parser = parser_for("assistant forget", "Remove an indexed folder from the index.")
    parser.add_argument("path", metavar="PATH", help="a folder listed by `assistant sources`")
    args = parser.parse_args(argv)

    def body() -> int:
        removed = forget_source(settings_from(args), args.path)
        print(f"forgot {removed['path']}: {removed['documents']} documents, {removed['chunks']} chunks")
        return 0

    return run_verb(body)


if __name__ == "__main__":
    raise SystemExit(main())
