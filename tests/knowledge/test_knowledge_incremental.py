"""Incremental personalize: unchanged files cost nothing, a changed file re-embeds only
its own chunks, a deleted file leaves SQLite, FTS5 and the vector index."""
from __future__ import annotations

import os
import time

from assistant.knowledge.base import KnowledgeBase
from assistant.knowledge.indexer import Indexer
from knowledge_helpers import index_state, write


def test_second_run_over_1000_unchanged_files_embeds_nothing_in_under_a_second(notes, settings):
    for i in range(1000):
        write(notes / f"folder{i % 10}" / f"note{i}.md", f"# Note {i}\nFact number {i} about item{i}.\n")
    first = Indexer(settings).run([notes])
    assert (first.new, first.chunks_total) == (1000, 1000)
    started = time.perf_counter()
    second = Indexer(settings).run([notes])
    elapsed = time.perf_counter() - started
    assert (second.scanned, second.unchanged, second.new, second.changed, second.embedded) == (1000, 1000, 0, 0, 0)
    assert elapsed < 1.0, f"unchanged re-run took {elapsed:.2f} s"


def test_changed_touched_and_deleted_files(notes, settings):
    dentist = write(notes / "dentist.md", "# Dentist\nMy dentist is Dr. Raman on Birch Lane.\n")
    car = write(notes / "car.md", "# Car\nMy car is a blue Honda Fit.\n")
    write(notes / "pets.md", "# Pets\nMy dog Biscuit is a beagle.\n" + "".join(
        f"\n## Walk {i}\nWe walked along the canal for {i} km and met a heron.\n" for i in range(12)))
    Indexer(settings).run([notes])
    before = index_state(settings)

    dentist.write_text("# Dentist\nMy dentist is now Dr. Okonkwo on Cedar Street.\n")
    changed = Indexer(settings).run([notes])
    assert (changed.changed, changed.new, changed.deleted, changed.unchanged) == (1, 0, 0, 2)
    assert changed.embedded == 1 and changed.chunks_removed == 1
    after = index_state(settings)
    assert len(before["chunks"] - after["chunks"]) == 1  # only the dentist's chunk was replaced
    with KnowledgeBase.open(settings) as kb:
        top = kb.search("Okonkwo Cedar Street", 1)[0]
        assert top.path == str(dentist) and "Okonkwo" in top.text
        assert all("Raman" not in p.text for p in kb.search("Raman Birch Lane", 5))

    stat = car.stat()
    os.utime(car, ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))  # saved without changes
    touched = Indexer(settings).run([notes])
    assert (touched.changed, touched.embedded, touched.unchanged) == (0, 0, 3)

    car.unlink()
    deleted = Indexer(settings).run([notes])
    assert (deleted.deleted, deleted.embedded, deleted.chunks_removed) == (1, 0, 1)
    final = index_state(settings)
    assert str(car) not in final["documents"]
    assert len(final["chunks"]) == len(after["chunks"]) - 1
    with KnowledgeBase.open(settings) as kb:
        assert all(p.path != str(car) for p in kb.search("blue Honda Fit car", 10))
        assert kb._store.lexical_search("Honda", 10) == []  # gone from FTS5 too


def test_a_lost_vector_file_is_rebuilt_from_sqlite_and_saved_again(notes, settings):
    write(notes / "keys.md", "# Keys\nThe spare key is under the blue flower pot.\n")
    Indexer(settings).run([notes])
    vector_files = list((settings.home / "knowledge" / "vectors").glob("*.hnsw"))
    assert len(vector_files) == 1
    vector_files[0].unlink()
    with KnowledgeBase.open(settings) as kb:  # readers rebuild in memory
        assert kb.search("where is the spare key", 1)[0].path == str(notes / "keys.md")
    report = Indexer(settings).run([notes])  # nothing changed, but the file comes back
    assert report.embedded == 0
    assert len(list((settings.home / "knowledge" / "vectors").glob("*.hnsw"))) == 1
    index_state(settings)
