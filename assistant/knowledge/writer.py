"""Changing the index atomically: one open SQLite transaction plus the in-memory vector
graph; ``commit()`` writes the next generation's vector file, then commits the
transaction that names it. Until that COMMIT, readers (and a restart after a crash)
see the previous generation, complete."""
from __future__ import annotations

import json
from typing import Optional

import numpy as np

from assistant.knowledge.chunker import Chunk, ChunkerConfig
from assistant.knowledge.encoders import encoder_for_index
from assistant.knowledge.errors import IndexMismatchError
from assistant.knowledge.layout import IndexLayout, WriteLock
from assistant.knowledge.store import Store
from assistant.knowledge.vectors import VectorIndex, generation_path, remove_stale


def load_vectors(store: Store, layout: IndexLayout, dim: int) -> VectorIndex:
    """The committed generation's vector file; rebuilt from the vectors kept in SQLite if
    the file is missing or unreadable (deleted by hand, disk trouble)."""
    return load_or_rebuild_vectors(store, layout, dim)[0]


def load_or_rebuild_vectors(store: Store, layout: IndexLayout, dim: int) -> tuple[VectorIndex, bool]:
    """(vectors, whether they had to be rebuilt from SQLite)."""
    name = store.get_meta("vector_file")
    live = store.chunk_count()
    if name:
        try:
            return VectorIndex.load(layout.vectors / name, dim, live), False
        except (OSError, RuntimeError):
            pass
    ids, vectors = store.all_vectors()
    if not len(ids):
        return VectorIndex(dim), False
    return VectorIndex.build(dim, ids, vectors), True


class IndexWriter:
    """The single writer of an index (holds the write lock while open)."""

    def __init__(self, layout: IndexLayout, encoder: Optional[str], chunker: ChunkerConfig):
        """``encoder``: None keeps the one the index was built with (the default for a new
        index); a name insists on that one. ``spec`` is the encoder to embed with."""
        self.layout = layout
        self._lock = WriteLock(layout.lock_file).acquire()
        try:
            self.store = Store(layout.database)
            self.spec = encoder_for_index(self.store.get_meta("encoder_name"), encoder)
            self.rechunk_all = self._check_meta(self.spec.name, self.spec.dim, chunker)
            self.vectors, rebuilt = load_or_rebuild_vectors(self.store, layout, self.spec.dim)
        except BaseException:
            self._lock.release()
            raise
        self.generation = int(self.store.get_meta("generation") or 0)
        self._open = False
        self._dirty = rebuilt  # a lost vector file is written again by the next commit

    def _check_meta(self, encoder_name: str, dim: int, chunker: ChunkerConfig) -> bool:
        """Record the encoder and chunker on a new index; on an existing one, refuse another
        encoder and report whether the chunker changed (then every document is redone)."""
        recorded = self.store.get_meta("encoder_name")
        chunker_json = json.dumps(chunker.as_dict(), sort_keys=True)
        if recorded is None:
            with self.store.transaction():
                self.store.set_meta("encoder_name", encoder_name)
                self.store.set_meta("encoder_dim", str(dim))
                self.store.set_meta("chunker", chunker_json)
            return False
        if recorded != encoder_name or int(self.store.get_meta("encoder_dim") or 0) != dim:
            raise IndexMismatchError(
                f"the index was built with encoder {recorded}, not {encoder_name}; "
                f"delete {self.layout.folder} and run `assistant personalize` again")
        return self.store.get_meta("chunker") != chunker_json

    def begin(self) -> None:
        """Start the transaction that the next ``commit()`` ends."""
        if not self._open:
            self.store.db.execute("BEGIN IMMEDIATE")
            self._open = True

    def remove_document(self, document_id: int) -> int:
        """Delete a document's rows and vectors; returns how many chunks went."""
        self.begin()
        chunk_ids = self.store.delete_document(document_id)
        self.vectors.remove(chunk_ids)
        self._dirty = True
        return len(chunk_ids)

    def add_document(self, path: str, fmt: str, size: int, mtime_ns: int, content_hash: Optional[str],
                     chunks: list[Chunk], vectors: np.ndarray, skip_reason: Optional[str] = None) -> None:
        """Store a document (replacing none: remove the old one first) with its chunks."""
        self.begin()
        document_id = self.store.save_document(path, fmt, size, mtime_ns, content_hash, skip_reason)
        if chunks:
            chunk_ids = self.store.insert_chunks(document_id, chunks, vectors)
            self.vectors.add(chunk_ids, vectors)
        self._dirty = True

    def touch_document(self, document_id: int, size: int, mtime_ns: int) -> None:
        """Same content, new stat: no new generation is needed for this."""
        self.begin()
        self.store.touch_document(document_id, size, mtime_ns)

    def commit(self, chunker: Optional[ChunkerConfig] = None) -> None:
        """Make everything since ``begin()`` visible: vector file first, then COMMIT."""
        if not self._open:
            return
        if chunker is not None:
            self.store.set_meta("chunker", json.dumps(chunker.as_dict(), sort_keys=True))
        keep = None
        if self._dirty:
            self.generation += 1
            keep = generation_path(self.layout.vectors, self.generation)
            self.layout.vectors.mkdir(parents=True, exist_ok=True)
            self.vectors.save(keep)
            self.store.set_meta("generation", str(self.generation))
            self.store.set_meta("vector_file", keep.name)
        self.store.db.execute("COMMIT")
        self._open = self._dirty = False
        if keep is not None:
            remove_stale(self.layout.vectors, keep)

    def rollback(self) -> None:
        """Drop uncommitted changes (the in-memory graph is discarded with the writer)."""
        if self._open:
            self._open = self._dirty = False
            if self.store.db.in_transaction:  # SQLite ends it itself after some errors (a full disk)
                self.store.db.execute("ROLLBACK")

    def close(self) -> None:
        """Roll back anything uncommitted, close SQLite, release the lock."""
        try:
            self.rollback()
            self.store.close()
        finally:
            self._lock.release()

    def __enter__(self) -> "IndexWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

