"""The vector side of the index: an hnswlib graph whose labels are chunk ids.

Every committed state of the index has its own file, ``vectors/<generation>.hnsw``,
written completely (temp file, fsync, rename) *before* the SQLite transaction that names
it commits. A run killed at any moment therefore leaves SQLite pointing at a complete
file that matches it; files of generations that never committed are removed later.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import numpy as np

HNSW_M = 16  # graph degree: recall vs. memory (~2*M*4 bytes of links per vector)
HNSW_EF_CONSTRUCTION = 200
# recall@10 at 100k chunks (benchmarks/knowledge/bench_index.py): 0.957 at ef 128, 0.979 at
# 256, 0.985 at 384, 0.989 at 512, 0.995 at 768 (about 1 ms more per query than 384)
HNSW_EF_SEARCH = 768


class VectorIndex:
    """Cosine nearest neighbours over unit vectors; deleted labels free their slots.

    hnswlib does not report how many of its labels are deleted, so the live count is
    tracked here (on load, the caller passes SQLite's chunk count, which matches it)."""

    def __init__(self, dim: int, capacity: int = 1024, index=None, live: int = 0):
        import hnswlib

        self.dim = dim
        if index is None:
            index = hnswlib.Index(space="cosine", dim=dim)
            index.init_index(max_elements=max(capacity, 16), ef_construction=HNSW_EF_CONSTRUCTION, M=HNSW_M,
                             allow_replace_deleted=True)
        index.set_ef(HNSW_EF_SEARCH)
        self._index = index
        self._live = live

    @classmethod
    def load(cls, path: Path, dim: int, live: int) -> "VectorIndex":
        """A saved index (FileNotFoundError/RuntimeError if missing or damaged)."""
        import hnswlib

        if not path.is_file():
            raise FileNotFoundError(path)
        index = hnswlib.Index(space="cosine", dim=dim)
        index.load_index(str(path), allow_replace_deleted=True)
        return cls(dim, index=index, live=live)

    @classmethod
    def build(cls, dim: int, ids: np.ndarray, vectors: np.ndarray) -> "VectorIndex":
        """A fresh index over the given vectors."""
        index = cls(dim, capacity=max(1024, len(ids) * 2))
        index.add(ids, vectors)
        return index

    def __len__(self) -> int:
        return self._live

    def add(self, ids, vectors: np.ndarray) -> None:
        """Insert vectors under chunk-id labels, reusing deleted slots first."""
        if len(ids) == 0:
            return
        needed = self._index.get_current_count() + len(ids)
        if needed > self._index.get_max_elements():
            self._index.resize_index(max(needed, self._index.get_max_elements() * 2))
        self._index.add_items(np.asarray(vectors, dtype=np.float32), np.asarray(ids, dtype=np.int64),
                              replace_deleted=True)
        self._live += len(ids)

    def remove(self, ids) -> None:
        """Mark labels deleted (unknown labels are ignored: a document may have had none)."""
        for label in ids:
            try:
                self._index.mark_deleted(int(label))
                self._live -= 1
            except RuntimeError:  # not present, or already deleted
                pass

    def contains(self, label: int) -> bool:
        """Whether ``label`` is stored and not deleted (for consistency checks)."""
        try:
            self._index.get_items([int(label)])
        except RuntimeError:
            return False
        return True

    def search(self, vector: np.ndarray, k: int, ef: Optional[int] = None) -> list[tuple[int, float]]:
        """(chunk id, cosine similarity) of up to ``k`` nearest live vectors, best first;
        ``ef`` (candidate list size) trades speed for recall."""
        k = min(k, self._live)
        query = np.asarray(vector, dtype=np.float32).reshape(1, -1)
        while k > 0:
            self._index.set_ef(max(ef or HNSW_EF_SEARCH, k))
            try:
                labels, distances = self._index.knn_query(query, k=k)
            except RuntimeError:  # fewer reachable live vectors than k (many deletions)
                k //= 2
                continue
            return [(int(label), 1.0 - float(distance)) for label, distance in zip(labels[0], distances[0])]
        return []

    def save(self, path: Path) -> None:
        """Write the whole index to ``path`` atomically and durably."""
        tmp = path.with_name(path.name + ".tmp")
        self._index.save_index(str(tmp))
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
        _fsync_dir(path.parent)


def generation_path(folder: Path, generation: int) -> Path:
    """The file of one committed generation."""
    return folder / f"{generation:08d}.hnsw"


def remove_stale(folder: Path, keep: Optional[Path]) -> None:
    """Delete vector files of other generations (leftovers of earlier or killed runs)."""
    if not folder.is_dir():
        return
    for path in folder.iterdir():
        if path != keep and (path.suffix == ".hnsw" or path.name.endswith(".hnsw.tmp")):
            try:
                path.unlink()
            except OSError:
                pass


def _fsync_dir(folder: Path) -> None:
    """Make a rename durable (POSIX needs the directory synced too)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
