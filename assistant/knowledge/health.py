"""The index's health as facts, for ``assistant doctor``: does the database open, does it
pass SQLite's quick check, is its schema current, is its committed vector file there.

Read-only, and it never raises for a damaged or locked database: that is the answer."""
from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from assistant.knowledge.errors import KnowledgeError
from assistant.knowledge.layout import IndexLayout
from assistant.knowledge.store import Store
from assistant.settings import Settings

OPEN_TIMEOUT_S = 5  # a writer holding the database longer than this is reported, not waited for


@dataclass(frozen=True)
class IndexHealth:
    """What a look at the index found; counts are zero when it could not be read."""

    database: Path
    exists: bool
    open_error: Optional[str] = None  # SQLite could not open or read it
    integrity: str = "ok"  # PRAGMA quick_check's verdict
    schema_problem: Optional[str] = None  # the store refuses it: not an index, or an older one
    sources: int = 0
    chunks: int = 0
    encoder: Optional[str] = None
    vector_file: Optional[str] = None
    vector_file_present: bool = True


def index_health(settings: Settings) -> IndexHealth:
    """Look at this home's index without changing it."""
    layout = IndexLayout.for_settings(settings)
    if not layout.database.is_file():
        return IndexHealth(layout.database, exists=False)
    try:
        integrity, meta, sources, chunks = _quick_look(layout.database)
    except sqlite3.Error as exc:
        return IndexHealth(layout.database, exists=True, open_error=str(exc))
    if integrity != "ok":
        return IndexHealth(layout.database, exists=True, integrity=integrity)
    schema = _schema_problem(layout.database)
    if schema:
        return IndexHealth(layout.database, exists=True, schema_problem=schema)
    vector_file = meta.get("vector_file")
    return IndexHealth(layout.database, exists=True, sources=sources, chunks=chunks,
                       encoder=meta.get("encoder_name"), vector_file=vector_file,
                       vector_file_present=not vector_file or (layout.vectors / vector_file).is_file())


def _quick_look(database: Path) -> tuple[str, dict, int, int]:
    """(quick_check verdict, meta table, source count, chunk count), tolerating missing
    tables: a half-made or foreign database must still get a verdict."""
    db = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=OPEN_TIMEOUT_S)
    try:
        verdict = db.execute("PRAGMA quick_check").fetchone()[0]
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        meta = dict(db.execute("SELECT key, value FROM meta").fetchall()) if "meta" in tables else {}
        chunks = db.execute("SELECT count(*) FROM chunks").fetchone()[0] if "chunks" in tables else 0
        sources = db.execute("SELECT count(*) FROM sources").fetchone()[0] if "sources" in tables else 0
    finally:
        db.close()
    return verdict, meta, sources, chunks


def _schema_problem(database: Path) -> Optional[str]:
    """Why the store's own read-only open refuses the database (migrations not current), if it does."""
    try:
        Store(database, writable=False).close()
    except KnowledgeError as exc:
        return exc.message
    except sqlite3.Error as exc:
        return f"{database} is not a knowledge index ({exc})"
    return None
