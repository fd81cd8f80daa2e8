"""``personalize --watch``: a saved file is searchable within 2 seconds."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from assistant.knowledge.base import KnowledgeBase
from knowledge_helpers import write


def wait_for(predicate, timeout_s: float) -> float | None:
    """Seconds until ``predicate()`` held, or None if it never did."""
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        if predicate():
            return time.monotonic() - started
        time.sleep(0.05)
    return None


def top_path(settings, query: str) -> str | None:
    with KnowledgeBase.open(settings) as kb:
        hits = kb.search(query, 1)
    return hits[0].path if hits else None


def test_watch_reindexes_a_saved_file_within_two_seconds(notes, settings):
    write(notes / "garden.md", "# Garden\nThe tomatoes are planted by the fence.\n")
    env = {**os.environ, "ASSISTANT_HOME": str(settings.home), "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen([sys.executable, "-m", "assistant.commands.personalize", str(notes), "--watch"],
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        for line in process.stdout:  # the first pass, then "watching ..."
            if line.startswith("watching"):
                break
        assert process.poll() is None, process.stderr.read()
        write(notes / "bike.md", "# Bike\nThe bike lock combination is 9-4-1-7.\n")
        seconds = wait_for(lambda: top_path(settings, "bike lock combination") == str(notes / "bike.md"), 2.0)
        assert seconds is not None, "a new note was not searchable within 2 s"
        write(notes / "garden.md", "# Garden\nThe pumpkins grow behind the shed now.\n")
        seconds = wait_for(lambda: top_path(settings, "pumpkins behind the shed") == str(notes / "garden.md"), 2.0)
        assert seconds is not None, "a saved note was not re-indexed within 2 s"
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=10)
    assert process.returncode in (0, 130)
