"""Hybrid search: RRF fusion, FTS5 query safety, one result per passage, an empty index."""
from __future__ import annotations

import pytest

from assistant.knowledge.base import KnowledgeBase
from assistant.knowledge.errors import InvalidQueryError
from assistant.knowledge.indexer import Indexer
from assistant.knowledge.search import reciprocal_rank_fusion
from assistant.knowledge.store import fts_query
from knowledge_helpers import write


def test_reciprocal_rank_fusion_rewards_agreement_and_lists_each_id_once():
    fused = reciprocal_rank_fusion([[1, 2, 3], [3, 4, 1]], k=60)
    ids = [item for item, _ in fused]
    assert sorted(ids) == [1, 2, 3, 4] and len(ids) == 4
    assert ids[0] == 1  # ranks 1 and 3 beat 3's ranks 3 and 1 by tie order, and 2's single rank
    scores = dict(fused)
    assert scores[1] == pytest.approx(1 / 61 + 1 / 63)
    assert scores[2] == pytest.approx(1 / 62)


def test_fts_query_quotes_words_and_drops_stopwords():
    assert fts_query("What is my dentist's name?") == '"dentist" OR "name"'
    assert fts_query('NOT "a" OR b* : (c)') == '"not" OR "b" OR "c"'
    assert fts_query("what is it") == '"what" OR "is" OR "it"'  # only stopwords: keep them
    assert fts_query("?!") == ""


def test_empty_index_is_cheap_and_returns_nothing(settings):
    with KnowledgeBase.open(settings) as kb:
        assert kb.is_empty()
        assert kb.search("anything", 3) == []
        assert not (settings.home / "knowledge" / "index.sqlite").exists()


def test_hybrid_search_ranks_the_right_passage_and_validates_input(notes, settings):
    write(notes / "wifi.txt", "The wifi network at home is called Heron-5G.\n")
    write(notes / "car.md", "# Car\nThe license plate is KX-482-LT.\n")
    write(notes / "dog.md", "# Dog\nMy beagle Biscuit loves long walks.\n")
    Indexer(settings).run([notes])
    with KnowledgeBase.open(settings) as kb:
        assert not kb.is_empty()
        plate = kb.search("KX-482-LT", 3)  # an exact code: BM25's strength
        assert plate[0].path.endswith("car.md") and plate[0].lexical_rank == 1
        dog = kb.search("which pet do I have?", 3)  # no shared word: the vectors find it
        assert dog[0].path.endswith("dog.md") and dog[0].lexical_rank is None
        hits = kb.search("wifi network name", 10)
        assert len({p.chunk_id for p in hits}) == len(hits) == 3  # one result per passage
        assert hits[0].score >= hits[1].score >= hits[2].score
        with pytest.raises(InvalidQueryError):
            kb.search("   ", 3)
        with pytest.raises(InvalidQueryError):
            kb.search("wifi", 0)


def test_words_in_too_many_chunks_are_left_out_of_bm25(notes, settings, monkeypatch):
    from assistant.knowledge import store

    for i, topic in enumerate(["kayak trip", "tax forms", "garden beds", "choir practice"]):
        write(notes / f"n{i}.md", f"# Note {i}\nThis weekly note is about the {topic}.\n")
    Indexer(settings).run([notes])
    monkeypatch.setattr(store, "MAX_TERM_CHUNKS", 2)  # "weekly" is in 4 chunks: too common
    with KnowledgeBase.open(settings) as kb:
        ranked = kb._store.lexical_search("weekly kayaking", 10)
        assert [kb._store.chunks_by_id([cid])[cid].path for cid, _ in ranked] == [str(notes / "n0.md")]
        assert len(kb._store.lexical_search("weekly", 10)) == 4  # only common words: the rarest is kept
        assert kb._store.lexical_search("zeppelin", 10) == []


def test_match_counts_are_remembered_until_the_index_changes(notes, settings, monkeypatch):
    from assistant.knowledge import store

    write(notes / "a.md", "# A\nThe kayak trip is in May.\n")
    write(notes / "b.md", "# B\nThe tax forms are due.\n")
    Indexer(settings).run([notes])
    monkeypatch.setattr(store, "MAX_TERM_CHUNKS", 2)
    with KnowledgeBase.open(settings) as kb:
        statements: list[str] = []
        kb._store.db.set_trace_callback(statements.append)
        assert len(kb._store.lexical_search("kayak forms", 10)) == 2
        counted = [s for s in statements if "LIMIT" in s and "count(*)" in s]
        assert len(counted) == 2  # one count per word
        statements.clear()
        assert len(kb._store.lexical_search("forms kayak", 10)) == 2
        assert not [s for s in statements if "count(*)" in s]  # the same words: from memory
        # another connection (a personalize run) makes "kayak" too common to rank by
        for i in range(3):
            write(notes / f"k{i}.md", f"# K{i}\nAnother kayak outing, number {i}.\n")
        Indexer(settings).run([notes])
        ranked = kb._store.lexical_search("kayak forms", 10)
        assert [kb._store.chunks_by_id([cid])[cid].path for cid, _ in ranked] == [str(notes / "b.md")]


def test_a_connections_own_writes_drop_its_remembered_counts(tmp_path, monkeypatch):
    import numpy as np

    from assistant.knowledge import store
    from assistant.knowledge.chunker import Chunk

    monkeypatch.setattr(store, "MAX_TERM_CHUNKS", 1)
    db = store.Store(tmp_path / "index.sqlite")
    with db.transaction():
        doc = db.save_document(str(tmp_path / "a.md"), "markdown", 1, 1, "h1", None)
        db.insert_chunks(doc, [Chunk(0, "A", 1, 1, "heron nest", 2)], np.ones((1, 4), np.float32))
    assert len(db.lexical_search("heron", 5)) == 1
    with db.transaction():
        doc = db.save_document(str(tmp_path / "b.md"), "markdown", 1, 1, "h2", None)
        db.insert_chunks(doc, [Chunk(0, "B", 1, 1, "heron eggs", 2)], np.ones((1, 4), np.float32))
    # "heron" is now in 2 chunks, over the cap: with a stale count of 1 it would rank alone
    assert [cid for cid, _ in db.lexical_search("heron eggs", 5)] == [2]
    db.close()
