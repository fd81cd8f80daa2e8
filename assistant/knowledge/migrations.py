"""Named, ordered schema migrations for the knowledge store (as in simonw/llm).

Each migration runs once, inside the transaction that records its name in
``_migrations``; add new ones at the end and never edit one that has shipped.
"""
from __future__ import annotations

import sqlite3

Migration = tuple[str, str]  # (name, SQL script)

_M001_INITIAL = """
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        CREATE TABLE sources (
            id INTEGER PRIMARY KEY,
            path TEXT NOT NULL UNIQUE,
            added_at REAL NOT NULL,
            indexed_at REAL
        );
        CREATE TABLE documents (
            id INTEGER PRIMARY KEY,
            path TEXT NOT NULL UNIQUE,
            format TEXT NOT NULL,
            size INTEGER NOT NULL,
            mtime_ns INTEGER NOT NULL,
            content_hash TEXT,
            skip_reason TEXT,
            indexed_at REAL NOT NULL
        );
        -- AUTOINCREMENT: chunk ids are vector labels in hnswlib and must never be reused
        CREATE TABLE chunks (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            document_id INTEGER NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
            ordinal INTEGER NOT NULL,
            heading TEXT NOT NULL,
            start_line INTEGER NOT NULL,
            end_line INTEGER NOT NULL,
            text TEXT NOT NULL,
            token_count INTEGER NOT NULL
        );
        CREATE INDEX chunks_document ON chunks(document_id);
        -- float32 vectors, so the hnswlib file can be rebuilt without re-embedding
        CREATE TABLE chunk_vectors (
            chunk_id INTEGER PRIMARY KEY REFERENCES chunks(id) ON DELETE CASCADE,
            vector BLOB NOT NULL
        );
"""

# the FTS5 tokenizer; the query side (store.QueryStemmer) must use the same one
FTS_TOKENIZER = "porter unicode61 remove_diacritics 2"

_M002_FTS = """
        CREATE VIRTUAL TABLE chunks_fts USING fts5(
            title, heading, text, tokenize = 'porter unicode61 remove_diacritics 2'
        );
        -- title: the file's path; folder and file names are often a note's best keywords
        CREATE TRIGGER chunks_fts_insert AFTER INSERT ON chunks BEGIN
            INSERT INTO chunks_fts(rowid, title, heading, text)
            SELECT new.id, documents.path, new.heading, new.text FROM documents WHERE documents.id = new.document_id;
        END;
        CREATE TRIGGER chunks_fts_delete AFTER DELETE ON chunks BEGIN
            DELETE FROM chunks_fts WHERE rowid = old.id;
        END;
"""


# per-term document counts, to leave out query words too common to rank by (and slow:
# an OR query costs one BM25 score per matching chunk)
_M003_FTS_VOCAB = """
        CREATE VIRTUAL TABLE chunks_fts_vocab USING fts5vocab(chunks_fts, 'row');
"""


MIGRATIONS: list[Migration] = [
    ("001_initial", _M001_INITIAL),
    ("002_fts", _M002_FTS),
    ("003_fts_vocab", _M003_FTS_VOCAB),
]


def migrate(db: sqlite3.Connection) -> list[str]:
    """Apply every migration not yet recorded; returns the names applied. ``db`` must be in
    autocommit mode (``isolation_level=None``) so that BEGIN/COMMIT here are the only ones."""
    db.execute("CREATE TABLE IF NOT EXISTS _migrations (name TEXT PRIMARY KEY, applied_at REAL NOT NULL)")
    done = {row[0] for row in db.execute("SELECT name FROM _migrations")}
    applied = []
    for name, script in MIGRATIONS:
        if name in done:
            continue
        try:  # one transaction per migration: all of it or none
            db.executescript(f"BEGIN IMMEDIATE;\n{script}\n"
                             f"INSERT INTO _migrations(name, applied_at) VALUES ('{name}', julianday('now'));\nCOMMIT;")
        except sqlite3.Error:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        applied.append(name)
    return applied
