"""The router evaluation set as the router benchmarks use it: its questions, and a home
with its notes indexed (once per home)."""
from __future__ import annotations

import json
from pathlib import Path

from assistant.router.difficulty import LEVELS

EVAL = Path(__file__).resolve().parent / "eval"


def questions(split: str, per_level: int | None = None) -> list[dict]:
    """The questions of ``split`` ('dev', 'test' or 'all'), in file order; with ``per_level``,
    the first that many of each level (a fixed subset)."""
    rows = [json.loads(line) for line in (EVAL / "questions.jsonl").read_text().splitlines() if line.strip()]
    rows = [row for row in rows if split == "all" or row["split"] == split]
    if per_level is None:
        return rows
    return [row for level in LEVELS for row in [r for r in rows if r["level"] == level][:per_level]]


def indexed_settings(home: Path, profile: str, n_ctx: int):
    """Settings for ``home`` on ``profile``, with the evaluation notes indexed there."""
    from assistant.knowledge.base import KnowledgeBase
    from assistant.knowledge.indexer import Indexer
    from assistant.settings import Settings

    settings = Settings(home=home, profile=profile, n_ctx=n_ctx)
    with KnowledgeBase.open(settings) as kb:
        empty = kb.is_empty()
    if empty:
        Indexer(settings, progress=False).run([str(EVAL / "notes")])
    return settings
