"""``KnowledgeBase``: the read side of the index, kept on ``app.state`` by the server.

Opening is cheap: with no index it holds nothing; with one it opens SQLite read-only and
loads the committed vector file. The encoder (onnxruntime) loads on the first query or
``embed`` call. Nothing here imports torch. When a personalize run commits a new
generation, the next search notices and reloads the vectors.
"""
from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Optional

from assistant.knowledge.encoders import DEFAULT_ENCODER, ENCODERS, encoder_for_index
from assistant.knowledge.errors import IndexMismatchError, InvalidQueryError, PassageNotFoundError
from assistant.knowledge.layout import IndexLayout
from assistant.knowledge.search import Passage, candidate_count, reciprocal_rank_fusion
from assistant.knowledge.store import ChunkRow, Store
from assistant.knowledge.vectors import VectorIndex
from assistant.knowledge.writer import load_vectors
from assistant.settings import Settings

MAX_K = 100


class KnowledgeBase:
    """Hybrid search over the personal index, plus the encoder for ``/v1/embeddings``."""

    def __init__(self, settings: Settings, encoder: Optional[str] = None, n_threads: Optional[int] = None):
        """``encoder``: None follows the index (the encoder it was built with; the default
        while there is none); a name insists on that encoder."""
        self.settings = settings
        self._requested_encoder = encoder
        self.spec = ENCODERS[encoder or DEFAULT_ENCODER]
        self.layout = IndexLayout.for_settings(settings)
        self.n_threads = n_threads
        self._lock = threading.Lock()  # the SQLite connection is shared, and which vectors are current
        self._vector_lock = threading.Lock()  # the hnswlib graph (searched while BM25 holds _lock)
        self._store: Optional[Store] = None
        self._vectors: Optional[VectorIndex] = None
        self._generation: Optional[str] = None
        self._embedder = None
        self._encoder_lock = threading.Lock()
        self._lexical_thread: Optional[ThreadPoolExecutor] = None

    @classmethod
    def open(cls, settings: Settings, encoder: Optional[str] = None,
             n_threads: Optional[int] = None) -> "KnowledgeBase":
        """The knowledge base of ``settings.home``; an empty one if nothing is indexed."""
        base = cls(settings, encoder, n_threads)
        with base._lock:
            base._refresh()
        return base

    @property
    def embedding_model_name(self) -> str:
        """The encoder's model name, as reported by ``/v1/embeddings`` (without its
        quantization, as a chat model's name is)."""
        return self.spec.model_name

    def _refresh(self) -> None:
        """(Re)load the vectors if the committed generation changed since the last look."""
        if self._store is None:
            if not self.layout.database.is_file():
                return
            store = Store(self.layout.database, writable=False)
            recorded = store.get_meta("encoder_name")
            spec = encoder_for_index(recorded, self._requested_encoder)
            if recorded not in (None, spec.name):
                store.close()  # kept closed: every search refuses, not only the first
                raise IndexMismatchError(f"the index was built with {recorded}, this server encodes with "
                                         f"{spec.name}: run `assistant personalize` again")
            if spec != self.spec:
                with self._encoder_lock:  # loaded (by an embeddings request) before the index existed
                    self.spec, self._embedder = spec, None
            self._store = store
        generation = self._store.get_meta("generation")
        if generation != self._generation or self._vectors is None:
            self._vectors = load_vectors(self._store, self.layout, self.spec.dim)
            self._generation = generation

    def is_empty(self) -> bool:
        """True when no chunk is indexed (the router then skips retrieval)."""
        with self._lock:
            self._refresh()
            return self._store is None or self._store.chunk_count() == 0

    def embed(self, texts: list[str]) -> list[list[float]]:
        """Unit-length vectors for ``texts`` (inputs longer than 256 tokens are truncated,
        as sentence-transformers does)."""
        if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
            raise InvalidQueryError("input must be a string or a list of strings", param="input")
        if not texts:
            return []
        return self._encoder().encode(texts).tolist()

    def warm_up(self) -> None:
        """Load the encoder now (exporting it in a subprocess if this home has none yet),
        so the first request does not pay for it."""
        self._encoder()

    def count_embedding_tokens(self, texts: list[str]) -> int:
        """Encoder tokens in ``texts``, for the ``usage`` field of ``/v1/embeddings``."""
        return self._encoder().count_tokens(texts)

    def _encoder(self):
        with self._encoder_lock:  # two first requests at once must not load it twice
            if self._embedder is None:
                from assistant.knowledge.embedder import OnnxEmbedder

                self._embedder = OnnxEmbedder.for_settings(self.settings, self.spec.name, self.n_threads)
            return self._embedder

    def search(self, query: str, k: int, timings: Optional[dict[str, float]] = None) -> list[Passage]:
        """The ``k`` best passages for ``query``: vector and BM25 rankings fused by RRF.
        ``timings``, if given, receives each stage's milliseconds (``embed_ms``,
        ``lexical_ms``, ``vector_ms``, ``fusion_ms``; the first two overlap)."""
        if not isinstance(query, str) or not query.strip():
            raise InvalidQueryError("the search query is empty", param="query")
        if k < 1 or k > MAX_K:
            raise InvalidQueryError(f"k must be between 1 and {MAX_K}, not {k}", param="k")
        wanted = candidate_count(k)
        with self._lock:
            self._refresh()
            if self._store is None or self._vectors is None or len(self._vectors) == 0:
                return []
            vectors = self._vectors  # a reload replaces the object: this one stays whole
            if self._lexical_thread is None:
                self._lexical_thread = ThreadPoolExecutor(1, thread_name_prefix="knowledge-bm25")
            lexical = self._lexical_thread.submit(self._lexical_search, query, wanted, timings)
        # BM25 needs no query vector: it runs on its thread while the encoder runs here
        # (SQLite and onnxruntime both release the GIL), so the two costs overlap
        started = time.perf_counter()
        query_vector = self._encoder().encode([query])[0]
        started = _lap(timings, "embed_ms", started)
        with self._vector_lock:
            vector_hits = vectors.search(query_vector, wanted)
        vector_ids = [chunk_id for chunk_id, _ in vector_hits]
        similarity = dict(vector_hits)
        _lap(timings, "vector_ms", started)
        lexical_ids = [chunk_id for chunk_id, _ in lexical.result()]
        started = time.perf_counter()
        fused = reciprocal_rank_fusion([vector_ids, lexical_ids])[: k * 2]
        with self._lock:
            rows = {} if self._store is None else self._store.chunks_by_id([chunk_id for chunk_id, _ in fused])
        vector_rank = {cid: rank for rank, cid in enumerate(vector_ids, start=1)}
        lexical_rank = {cid: rank for rank, cid in enumerate(lexical_ids, start=1)}
        passages = []
        for chunk_id, score in fused:
            row = rows.get(chunk_id)
            if row is None:  # deleted between the vector read and now
                continue
            passages.append(Passage(chunk_id, row.path, row.heading, row.start_line, row.end_line, row.text,
                                    score, vector_rank.get(chunk_id), lexical_rank.get(chunk_id),
                                    similarity.get(chunk_id)))
        _lap(timings, "fusion_ms", started)
        return passages[:k]

    def _lexical_search(self, query: str, limit: int,
                        timings: Optional[dict[str, float]]) -> list[tuple[int, float]]:
        """BM25 hits, on the lexical thread (the store is shared, hence the lock)."""
        started = time.perf_counter()
        with self._lock:
            hits = [] if self._store is None else self._store.lexical_search(query, limit)
        _lap(timings, "lexical_ms", started)
        return hits

    def sources(self) -> list[dict]:
        """The indexed folders (as ``assistant sources`` lists them): path, documents,
        skipped, chunks, indexed_at (epoch s); none while nothing is indexed."""
        with self._lock:
            self._refresh()
            return [] if self._store is None else self._store.sources()

    def passage(self, path: str, start_line: int, end_line: int) -> list[ChunkRow]:
        """The stored chunks of the indexed document ``path`` that overlap the line range.
        Read from the index, never from the disk: a path that is not indexed finds nothing."""
        if start_line < 1 or end_line < start_line:
            raise InvalidQueryError(f"bad line range {start_line}-{end_line}", param="start_line")
        with self._lock:
            self._refresh()
            chunks = [] if self._store is None else self._store.chunks_in_lines(path, start_line, end_line)
        if not chunks:
            raise PassageNotFoundError(f"no indexed passage in {path} at lines {start_line}-{end_line}",
                                       param="path")
        return chunks

    def close(self) -> None:
        """Release SQLite and the vectors."""
        with self._lock:
            if self._store is not None:
                self._store.close()
            self._store = self._vectors = None
            self._embedder = None
            if self._lexical_thread is not None:
                self._lexical_thread.shutdown(wait=False)
                self._lexical_thread = None

    def __enter__(self) -> "KnowledgeBase":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _lap(timings: Optional[dict[str, float]], stage: str, started: float) -> float:
    """Record the milliseconds since ``started`` under ``stage`` (if timing); returns now."""
    now = time.perf_counter()
    if timings is not None:
        timings[stage] = (now - started) * 1000
    return now
