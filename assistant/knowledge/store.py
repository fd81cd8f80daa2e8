"""The SQLite side of the index: sources, documents, chunks, their vectors and FTS5.

Connections run in autocommit mode with explicit ``BEGIN IMMEDIATE``/``COMMIT`` so that a
personalize run controls exactly what becomes visible, and in WAL mode so that a server
keeps reading the last committed index while a run writes the next one.
"""
from __future__ import annotations

import re
import sqlite3
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Optional

import numpy as np

from assistant.knowledge.chunker import Chunk
from assistant.knowledge.errors import KnowledgeError
from assistant.knowledge.migrations import FTS_TOKENIZER, MIGRATIONS, migrate


@dataclass(frozen=True)
class DocumentRow:
    """What the store remembers about a file, to tell whether it changed."""

    id: int
    path: str
    size: int
    mtime_ns: int
    content_hash: Optional[str]
    skip_reason: Optional[str]


@dataclass(frozen=True)
class ChunkRow:
    """A stored chunk with its document's path."""

    id: int
    path: str
    heading: str
    start_line: int
    end_line: int
    text: str


def under(root: str) -> tuple[str, str, str]:
    """SQL condition parameters for 'path is root or inside it', using the path index
    (LIKE would treat ``_`` and ``%`` in folder names as wildcards)."""
    return root, root.rstrip("/") + "/", root.rstrip("/") + "0"  # '0' sorts right after '/'


_UNDER_SQL = "(path = ? OR (path >= ? AND path < ?))"


class Store:
    """One connection to ``index.sqlite``."""

    def __init__(self, path: Path, writable: bool = True):
        self.path = path
        if writable:
            path.parent.mkdir(parents=True, exist_ok=True)
            uri = f"file:{path}?mode=rwc"
        else:
            uri = f"file:{path}?mode=ro"
        # autocommit mode: transactions are explicit; check_same_thread off because the
        # server calls from a thread pool (callers serialise with a lock)
        self.db = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False, timeout=30)
        self.db.execute("PRAGMA foreign_keys = ON")
        self._stemmer = QueryStemmer()
        self._match_counts = MatchCountCache(self.db)
        if writable:
            self.db.execute("PRAGMA journal_mode = WAL")
            self.db.execute("PRAGMA synchronous = NORMAL")
            migrate(self.db)
        else:
            self._require_current_schema()

    def _require_current_schema(self) -> None:
        try:
            done = {row[0] for row in self.db.execute("SELECT name FROM _migrations")}
        except sqlite3.Error as exc:
            raise KnowledgeError(f"{self.path} is not a knowledge index ({exc})") from exc
        missing = [name for name, _ in MIGRATIONS if name not in done]
        if missing:
            raise KnowledgeError(f"the index at {self.path} is from an older version "
                                 f"(missing {', '.join(missing)}): run `assistant personalize` to upgrade it")

    def close(self) -> None:
        """Close the connection."""
        self.db.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """All writes inside become visible together, or not at all."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    # --- metadata -------------------------------------------------------------------
    def get_meta(self, key: str) -> Optional[str]:
        """A metadata value, or None."""
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def set_meta(self, key: str, value: str) -> None:
        """Set a metadata value (inside the caller's transaction)."""
        self.db.execute("INSERT INTO meta(key, value) VALUES (?, ?) "
                        "ON CONFLICT(key) DO UPDATE SET value = excluded.value", (key, value))

    # --- sources --------------------------------------------------------------------
    def add_source(self, root: str) -> None:
        """Record an indexed folder (or file) and when it was last indexed."""
        now = time.time()
        self.db.execute("INSERT INTO sources(path, added_at, indexed_at) VALUES (?, ?, ?) "
                        "ON CONFLICT(path) DO UPDATE SET indexed_at = excluded.indexed_at", (root, now, now))

    def sources(self) -> list[dict]:
        """Every source with its document, skipped-file and chunk counts."""
        out = []
        for root, indexed_at in self.db.execute("SELECT path, indexed_at FROM sources ORDER BY path").fetchall():
            documents, skipped, chunks = self.db.execute(
                f"SELECT count(*), count(skip_reason), "
                f"(SELECT count(*) FROM chunks WHERE document_id IN (SELECT id FROM documents WHERE {_UNDER_SQL})) "
                f"FROM documents WHERE {_UNDER_SQL}", under(root) + under(root)).fetchone()
            out.append({"path": root, "documents": documents - skipped, "skipped": skipped,
                        "chunks": chunks, "indexed_at": indexed_at})
        return out

    def source_paths(self) -> list[str]:
        """Paths of all sources."""
        return [row[0] for row in self.db.execute("SELECT path FROM sources ORDER BY path")]

    def remove_source(self, root: str) -> None:
        """Forget a source row (its documents are removed separately)."""
        self.db.execute("DELETE FROM sources WHERE path = ?", (root,))

    # --- documents ------------------------------------------------------------------
    def documents_under(self, root: str) -> dict[str, DocumentRow]:
        """Stored documents at or below ``root``, by path."""
        rows = self.db.execute(f"SELECT id, path, size, mtime_ns, content_hash, skip_reason FROM documents "
                               f"WHERE {_UNDER_SQL}", under(root)).fetchall()
        return {row[1]: DocumentRow(*row) for row in rows}

    def chunk_ids_of(self, document_id: int) -> list[int]:
        """Ids (= vector labels) of a document's chunks."""
        return [row[0] for row in self.db.execute("SELECT id FROM chunks WHERE document_id = ?", (document_id,))]

    def delete_document(self, document_id: int) -> list[int]:
        """Remove a document; its chunks, vectors and FTS rows go with it (cascade and
        trigger). Returns the removed chunk ids."""
        chunk_ids = self.chunk_ids_of(document_id)
        self.db.execute("DELETE FROM documents WHERE id = ?", (document_id,))
        return chunk_ids

    def save_document(self, path: str, fmt: str, size: int, mtime_ns: int, content_hash: Optional[str],
                      skip_reason: Optional[str]) -> int:
        """Insert a document row (the caller deleted any previous one); returns its id."""
        cursor = self.db.execute(
            "INSERT INTO documents(path, format, size, mtime_ns, content_hash, skip_reason, indexed_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)", (path, fmt, size, mtime_ns, content_hash, skip_reason, time.time()))
        return int(cursor.lastrowid)

    def touch_document(self, document_id: int, size: int, mtime_ns: int) -> None:
        """Same content, new mtime: remember it so the next run need not read the file."""
        self.db.execute("UPDATE documents SET size = ?, mtime_ns = ? WHERE id = ?", (size, mtime_ns, document_id))

    def insert_chunks(self, document_id: int, chunks: list[Chunk], vectors: np.ndarray) -> list[int]:
        """Store chunks and their vectors; returns the new chunk ids in order."""
        ids = []
        for chunk, vector in zip(chunks, vectors):
            cursor = self.db.execute(
                "INSERT INTO chunks(document_id, ordinal, heading, start_line, end_line, text, token_count) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)", (document_id, chunk.ordinal, chunk.heading, chunk.start_line,
                                                chunk.end_line, chunk.text, chunk.token_count))
            ids.append(int(cursor.lastrowid))
        self.db.executemany("INSERT INTO chunk_vectors(chunk_id, vector) VALUES (?, ?)",
                            [(cid, np.asarray(v, dtype=np.float32).tobytes()) for cid, v in zip(ids, vectors)])
        return ids

    # --- reading --------------------------------------------------------------------
    def chunk_count(self) -> int:
        """Number of chunks in the index."""
        return int(self.db.execute("SELECT count(*) FROM chunks").fetchone()[0])

    def chunks_by_id(self, chunk_ids: list[int]) -> dict[int, ChunkRow]:
        """Chunks with their document path, by id (missing ids are left out)."""
        if not chunk_ids:
            return {}
        marks = ",".join("?" * len(chunk_ids))
        rows = self.db.execute(
            f"SELECT chunks.id, documents.path, heading, start_line, end_line, text FROM chunks "
            f"JOIN documents ON documents.id = chunks.document_id WHERE chunks.id IN ({marks})", chunk_ids)
        return {row[0]: ChunkRow(*row) for row in rows}

    def chunks_in_lines(self, path: str, start_line: int, end_line: int) -> list[ChunkRow]:
        """The chunks of the indexed document ``path`` whose lines overlap
        ``start_line..end_line``, in document order (none if ``path`` is not indexed)."""
        rows = self.db.execute(
            "SELECT chunks.id, documents.path, heading, start_line, end_line, text FROM chunks "
            "JOIN documents ON documents.id = chunks.document_id "
            "WHERE documents.path = ? AND start_line <= ? AND end_line >= ? ORDER BY chunks.ordinal",
            (path, end_line, start_line))
        return [ChunkRow(*row) for row in rows]

    def all_chunks(self) -> list[tuple[str, str, str]]:
        """(document path, heading, text) of every chunk, in document order."""
        return self.db.execute(
            "SELECT documents.path, chunks.heading, chunks.text FROM chunks "
            "JOIN documents ON documents.id = chunks.document_id ORDER BY documents.path, chunks.ordinal").fetchall()

    def backup_to(self, target: Path) -> None:
        """A consistent copy of the whole database at ``target`` (SQLite's online backup:
        a concurrent writer's uncommitted transaction is not copied)."""
        target.parent.mkdir(parents=True, exist_ok=True)
        copy = sqlite3.connect(target)
        try:
            with copy:
                self.db.backup(copy)
        finally:
            copy.close()

    def all_vectors(self) -> tuple[np.ndarray, np.ndarray]:
        """(chunk ids, vectors) of the whole index, to rebuild the vector file."""
        rows = self.db.execute("SELECT chunk_id, vector FROM chunk_vectors ORDER BY chunk_id").fetchall()
        ids = np.array([row[0] for row in rows], dtype=np.int64)
        vectors = np.stack([np.frombuffer(row[1], dtype=np.float32) for row in rows]) if rows else np.zeros((0, 0))
        return ids, vectors

    def lexical_search(self, query: str, limit: int) -> list[tuple[int, float]]:
        """(chunk id, BM25 score; higher is better) for the query's words, best first.
        Words found in more than ``MAX_TERM_CHUNKS`` chunks are left out (they barely
        change the ranking and each match costs a score); if every word is that common,
        the rarest one alone is used."""
        words = query_words(query)
        if not words:
            return []
        cap = MAX_TERM_CHUNKS
        counts = self._match_counts.counts(words, cap + 1, self._chunks_matching)
        present = [w for w in words if counts[w] > 0]
        kept = [w for w in present if counts[w] <= cap]
        if not kept and present:  # only common words: now their exact counts are worth reading
            kept = [self._rarest(present)]
        if not kept:
            return []
        rows = self.db.execute(
            "SELECT rowid, bm25(chunks_fts, 1.0, 2.0, 1.0) AS score FROM chunks_fts WHERE chunks_fts MATCH ? "
            "ORDER BY score LIMIT ?", (fts_expression(kept), limit)).fetchall()
        return [(int(row[0]), -float(row[1])) for row in rows]  # FTS5's bm25 is lower-is-better

    def _chunks_matching(self, word: str, at_most: int) -> int:
        """How many chunks match ``word``, counting no further than ``at_most``: walking the
        rowids stops at the bound, where ``chunks_fts_vocab`` reads a common term's whole
        posting list, positions included (4 ms for a word in every one of 100k chunks)."""
        return int(self.db.execute("SELECT count(*) FROM (SELECT 1 FROM chunks_fts WHERE chunks_fts MATCH ? "
                                   "LIMIT ?)", (fts_expression([word]), at_most)).fetchone()[0])

    def _rarest(self, words: list[str]) -> str:
        """The word whose indexed term is in the fewest chunks (exact counts: slow for
        common terms, so only for queries made of common words alone)."""
        terms = self._stemmer.terms(words)
        wanted = sorted(set(terms.values()))
        counts = dict(self.db.execute(
            f"SELECT term, doc FROM chunks_fts_vocab WHERE term IN ({','.join('?' * len(wanted))})", wanted))
        return min(words, key=lambda w: counts.get(terms.get(w), 0) or float("inf"))


MAX_TERM_CHUNKS = 5000
MATCH_COUNTS_KEPT = 20_000  # words whose bounded match counts a connection remembers (about 2 MB)


class MatchCountCache:
    """Each query word's bounded match count, remembered until the index changes.

    Counting is a third of BM25's time on a large index (a common word walks up to
    ``MAX_TERM_CHUNKS`` rowids) and people ask with the same words again and again. The
    counts are dropped whenever ``PRAGMA data_version`` says another connection committed
    (a personalize run) or this connection changed a row itself, so a count is always the
    current index's."""

    def __init__(self, db: sqlite3.Connection, kept: int = MATCH_COUNTS_KEPT):
        self._db = db
        self._kept = kept
        self._version: Optional[tuple[int, int]] = None
        self._counts: dict[tuple[str, int], int] = {}

    def counts(self, words: list[str], at_most: int, count: Callable[[str, int], int]) -> dict[str, int]:
        """word -> ``count(word, at_most)``, from memory where the index has not changed."""
        version = (int(self._db.execute("PRAGMA data_version").fetchone()[0]), self._db.total_changes)
        if version != self._version or len(self._counts) > self._kept:
            self._counts.clear()
            self._version = version
        for word in words:
            if (word, at_most) not in self._counts:
                self._counts[(word, at_most)] = count(word, at_most)
        return {word: self._counts[(word, at_most)] for word in words}


_STOPWORDS = frozenset(
    "a an and are as at be by did do does for from had has have how i in is it its me my of on or our so "
    "than that the their them then there these they this to was we were what when where which who whom why "
    "will with you your s t d ll re ve m".split())
_WORD = re.compile(r"\w+", re.UNICODE)


def query_words(query: str) -> list[str]:
    """The query's distinct content words (all its words if it has only stopwords)."""
    words = [w for w in _WORD.findall(query.lower()) if w not in _STOPWORDS]
    if not words:  # a query of only stopwords still deserves an answer
        words = _WORD.findall(query.lower())
    return list(dict.fromkeys(words))[:32]


def fts_expression(words: list[str]) -> str:
    """An FTS5 expression matching any of ``words``. Each is quoted so user text can never
    be read as FTS5 syntax (``NOT``, ``:``, ``*``)."""
    return " OR ".join(f'"{w}"' for w in words)


def fts_query(query: str) -> str:
    """The FTS5 expression for a query's content words (before frequency pruning)."""
    return fts_expression(query_words(query))


class QueryStemmer:
    """Stems query words with the index's own FTS5 tokenizer (an in-memory FTS5 table
    and its vocabulary), so they can be looked up in ``chunks_fts_vocab``."""

    def __init__(self) -> None:
        self._db = sqlite3.connect(":memory:", check_same_thread=False)
        self._db.executescript(f"""
            CREATE VIRTUAL TABLE words USING fts5(word, tokenize = '{FTS_TOKENIZER}');
            CREATE VIRTUAL TABLE word_terms USING fts5vocab(words, 'instance');
        """)

    def terms(self, words: list[str]) -> dict[str, str]:
        """word -> its indexed term (the first token, for words the tokenizer splits)."""
        with self._db:
            self._db.execute("DELETE FROM words")
            self._db.executemany("INSERT INTO words(rowid, word) VALUES (?, ?)", list(enumerate(words)))
            rows = self._db.execute("SELECT doc, term FROM word_terms ORDER BY doc, offset").fetchall()
        terms: dict[str, str] = {}
        for doc, term in rows:
            terms.setdefault(words[doc], term)
        return terms
