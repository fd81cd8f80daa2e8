"""Hybrid retrieval: vector neighbours (hnswlib, cosine) and FTS5 BM25 matches, merged
by reciprocal-rank fusion (Cormack et al., 2009), one result per passage."""
from __future__ import annotations

from dataclasses import asdict, dataclass

RRF_K = 60  # the constant of the RRF paper; damps the weight of the very first ranks
CANDIDATES_MIN = 50  # each retriever contributes at least this many candidates


@dataclass(frozen=True)
class Passage:
    """A retrieved chunk: where it is, what it says, how well it ranked."""

    chunk_id: int
    path: str  # absolute
    heading: str
    start_line: int
    end_line: int
    text: str
    score: float  # fused RRF score, higher is better
    vector_rank: int | None = None  # 1-based rank among vector neighbours, None if absent
    lexical_rank: int | None = None  # 1-based rank among BM25 matches
    similarity: float | None = None  # cosine of passage and query, None if not a vector neighbour

    def as_source(self) -> dict:
        """The citation shape of the API's ``sources`` list."""
        return {"path": self.path, "heading": self.heading, "start_line": self.start_line,
                "end_line": self.end_line, "score": round(self.score, 6)}

    def as_dict(self) -> dict:
        """Every field, for JSON output."""
        return asdict(self)


def candidate_count(k: int) -> int:
    """How many candidates each retriever returns for a final top-``k``."""
    return max(CANDIDATES_MIN, 4 * k)


def reciprocal_rank_fusion(rankings: list[list[int]], k: int = RRF_K) -> list[tuple[int, float]]:
    """Fuse ranked id lists: score(id) = sum over lists of 1 / (k + rank). An id appears
    once in the result however many lists hold it; ties break by first appearance."""
    scores: dict[int, float] = {}
    for ranking in rankings:
        for rank, item in enumerate(ranking, start=1):
            scores[item] = scores.get(item, 0.0) + 1.0 / (k + rank)
    return sorted(scores.items(), key=lambda pair: -pair[1])
