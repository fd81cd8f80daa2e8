"""Atomic updates: a personalize run killed with SIGKILL at any moment leaves an index
that is complete, consistent and searchable; the next run finishes the job."""
from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time

from assistant.knowledge.base import KnowledgeBase
from assistant.knowledge.indexer import Indexer
from knowledge_helpers import index_state, write
import pytest

pytestmark = pytest.mark.slow  # long: skipped by `make test-fast`, run by `make test`

# A real personalize run, with checkpoints every 0.3 s so that kills land both between
# and inside checkpoints (the CLI checkpoints every 60 s).
# Enough notes that an idle machine is still indexing when the third kill lands (with 200,
# a quiet CI machine had indexed 111 by the first kill and finished before the third).
BULK = 800
RUN = ("import sys; from assistant.settings import Settings; from assistant.knowledge.indexer import Indexer; "
       "Indexer(Settings(), checkpoint_s=0.3).run([sys.argv[1]])")


def test_sigkill_mid_run_leaves_a_usable_index(notes, settings):
    write(notes / "baseline.md", "# Dentist\nMy dentist is Dr. Priya Raman.\n")
    Indexer(settings).run([notes])
    for i in range(BULK):
        write(notes / "bulk" / f"day{i:03d}.md", f"# Day {i}\n" + "".join(
            f"\n## Entry {j}\nOn day {i} I noted item {j}: the weather was mild and the bus was late.\n"
            for j in range(3)))
    env = {**os.environ, "ASSISTANT_HOME": str(settings.home)}
    database = settings.home / "knowledge" / "index.sqlite"
    kills = []
    # kill early (start-up, scanning, first embeddings), then right after a checkpoint
    # committed, then after further progress: every kill must leave a usable index
    for wait_until in ("early", 1, 40):
        process = subprocess.Popen([sys.executable, "-c", RUN, str(notes)], env=env,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if wait_until == "early":
            time.sleep(1.0)
        else:
            target = kills[-1] + wait_until
            deadline = time.monotonic() + 60
            while committed_documents(database) <= target and time.monotonic() < deadline:
                assert process.poll() is None, "the run ended before it could be killed mid-way"
                time.sleep(0.02)
        assert process.poll() is None, "the run ended before it could be killed mid-way"
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
        state = index_state(settings)  # raises if SQLite, FTS and vectors disagree
        assert str(notes / "baseline.md") in state["documents"]
        with KnowledgeBase.open(settings) as kb:
            assert kb.search("Who is my dentist?", 1)[0].path == str(notes / "baseline.md")
        kills.append(len(state["documents"]))
    assert 1 < kills[1] < kills[2] < BULK + 1, kills
    final = Indexer(settings).run([notes])
    assert len(index_state(settings)["documents"]) == BULK + 1
    assert (final.unchanged, final.new) == (kills[-1], BULK + 1 - kills[-1])  # checkpointed work is kept


def committed_documents(database) -> int:
    """Documents visible to a reader right now (committed ones only)."""
    connection = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=5)
    try:
        return connection.execute("SELECT count(*) FROM documents").fetchone()[0]
    finally:
        connection.close()
