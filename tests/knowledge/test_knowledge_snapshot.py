"""What other parts take from the index through ``knowledge`` (never opening its SQLite
themselves): the chunks for training, a consistent copy for the study, and its health for
the doctor, including on a damaged or locked database."""
from __future__ import annotations

import sqlite3

import pytest

from assistant.knowledge import health
from assistant.knowledge.errors import IndexNotFoundError
from assistant.knowledge.indexer import Indexer
from assistant.knowledge.snapshot import backup_index_to, indexed_chunks
from assistant.settings import Settings
from knowledge_helpers import write


def test_chunks_and_a_copy_of_the_index(notes, settings, tmp_path):
    assert indexed_chunks(settings) is None
    with pytest.raises(IndexNotFoundError):
        backup_index_to(settings, Settings(home=tmp_path / "copy"))
    write(notes / "b.md", "# Bike\nThe lock code is 9417.\n")
    write(notes / "a.md", "# Garden\nTomatoes by the fence.\n")
    Indexer(settings).run([notes])
    chunks = indexed_chunks(settings)
    assert [(c.path, c.heading) for c in chunks] == [(str(notes / "a.md"), "Garden"), (str(notes / "b.md"), "Bike")]
    copy = Settings(home=tmp_path / "copy")
    backup_index_to(settings, copy)
    assert indexed_chunks(copy) == chunks


def test_health_of_a_healthy_index(notes, settings):
    assert health.index_health(settings).exists is False
    write(notes / "a.md", "# A\nAlpha.\n")
    Indexer(settings).run([notes])
    found = health.index_health(settings)
    assert (found.open_error, found.integrity, found.schema_problem) == (None, "ok", None)
    assert (found.sources, found.chunks, found.encoder) == (1, 1, "all-MiniLM-L6-v2-int8")
    assert found.vector_file and found.vector_file_present


def test_health_reports_damage_and_locks_instead_of_raising(settings, monkeypatch):
    database = settings.layout.index_database
    database.parent.mkdir(parents=True, exist_ok=True)  # the encoder already lives there
    database.write_bytes(b"this is not a database" * 100)
    assert "not a database" in health.index_health(settings).open_error
    database.unlink()
    sqlite3.connect(database).execute("CREATE TABLE other (x)").connection.commit()
    assert "not a knowledge index" in health.index_health(settings).schema_problem
    monkeypatch.setattr(health, "OPEN_TIMEOUT_S", 0.1)
    holder = sqlite3.connect(database, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")  # a rollback-journal writer mid-transaction: readers wait
    try:
        assert "locked" in health.index_health(settings).open_error
    finally:
        holder.execute("ROLLBACK")
        holder.close()
