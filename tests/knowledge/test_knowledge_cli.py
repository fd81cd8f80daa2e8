"""The four verbs through their ``main()``: personalize, search, sources, forget; errors
are one line on stderr with exit status 1; the notes are never touched."""
from __future__ import annotations

import os
import subprocess
import sys

from assistant.commands import forget, personalize, search, sources
from knowledge_helpers import index_state, tree_state, write


def test_personalize_search_sources_forget(notes, settings, tmp_path, capsys):
    home = ["--home", str(settings.home)]
    write(notes / "health" / "dentist.md", "# Health\n## Dentist\nMy dentist is Dr. Priya Raman.\n")
    write(notes / "car.txt", "My car is a blue Honda Fit.\n")
    other = tmp_path / "work-notes"
    write(other / "job.org", "* Work\nI work at Northwind Logistics.\n")
    before = tree_state(notes)

    assert personalize.main([str(notes), str(other), "--quiet", *home]) == 0
    out = capsys.readouterr().out
    assert "files scanned: 3  new: 3" in out and "chunks: 3 in index" in out

    assert search.main(["Who is my dentist?", "-k", "2", *home]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2
    location, heading, score = lines[0].split("  ")
    assert location == f"{notes / 'health' / 'dentist.md'}:2-3" and heading == "Health > Dentist"
    assert 0 < float(score) < 1

    assert sources.main(home) == 0
    listed = capsys.readouterr().out.splitlines()
    assert [line.split("  ")[0] for line in listed] == sorted([str(notes), str(other)])
    assert any(line.startswith(f"{notes}  documents: 2  chunks: 2  skipped: 0  indexed: ") for line in listed)
    assert any(line.startswith(f"{other}  documents: 1  chunks: 1  skipped: 0  indexed: ") for line in listed)

    assert forget.main([str(notes), *home]) == 0
    assert capsys.readouterr().out.strip() == f"forgot {notes}: 2 documents, 2 chunks"
    assert tree_state(notes) == before  # forgetting never deletes notes
    state = index_state(settings)
    assert state["documents"] == {str(other / "job.org")} and len(state["chunks"]) == 1
    assert search.main(["dentist Raman", *home]) == 0
    assert "dentist.md" not in capsys.readouterr().out

    assert forget.main([str(notes), *home]) == 1
    assert capsys.readouterr().err.startswith(f"error: {notes} is not an indexed source (sources: {other})")


def test_search_on_an_empty_index_and_bad_k(settings, capsys):
    assert search.main(["anything", "--home", str(settings.home)]) == 0
    assert "the index is empty" in capsys.readouterr().out
    assert sources.main(["--home", str(settings.home)]) == 0
    assert "no sources" in capsys.readouterr().out


def test_verbs_run_as_modules_with_env_home(notes, settings):
    write(notes / "a.md", "# A\nAlpha note about kayaks.\n")
    env = {**os.environ, "ASSISTANT_HOME": str(settings.home)}
    run = lambda *args: subprocess.run([sys.executable, "-m", *args], env=env, capture_output=True,  # noqa: E731
                                       text=True, timeout=120)
    done = run("assistant.commands.personalize", str(notes))
    assert done.returncode == 0, done.stderr
    found = run("assistant.commands.search", "kayak", "-k", "1")
    assert found.returncode == 0 and found.stdout.startswith(f"{notes / 'a.md'}:1-2  A  ")
    missing = run("assistant.commands.forget", str(notes / "nope"))
    assert missing.returncode == 1 and missing.stderr.startswith("error: ")
