"""personalize on a real folder with every format and every kind of bad file: what gets
indexed, what gets skipped (with which reason), and that the notes are never written."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from assistant.knowledge.base import KnowledgeBase
from assistant.knowledge.indexer import Indexer
from assistant.knowledge.report import format_report
from knowledge_helpers import make_pdf, tree_state, write


def build_messy_folder(notes: Path) -> None:
    """One note of each format, plus everything personalize must survive."""
    write(notes / "health" / "dentist.md", "# Health\n## Dentist\nMy dentist is Dr. Priya Raman.\n")
    write(notes / "todo.txt", "Buy a new bicycle pump.\n")
    write(notes / "family.org", "* Family\n** Lena\nMy sister Lena lives in Lisbon.\n")
    write(notes / "study.rst", "Study\n=====\n\nI studied physics in Utrecht.\n")
    write(notes / "food.html", "<html><head><script>var hidden='zebra';</script></head>"
                               "<body><h1>Food</h1><p>My favourite restaurant is Casa Verde.</p></body></html>")
    (notes / "vaccines.pdf").write_bytes(make_pdf([["The next tetanus booster is due in 2031."]]))
    (notes / "broken.pdf").write_bytes(b"%PDF-1.7\n1 0 obj << /Type /Catalog /Pages 2 0 R >>\ntruncated")
    write(notes / "unicode" / "日記.md", "# Café\nZürich: Grüße an Ærøskøbing — 東京で寿司を食べた。 🍣\n")
    (notes / "empty.md").write_bytes(b"")
    (notes / "latin1.txt").write_bytes(b"Cr\xe8me br\xfbl\xe9e recipe")
    (notes / "image.txt").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    (notes / "huge.txt").write_bytes(b"x " * 600_000)  # 1.2 MB, over the test's 1 MB limit
    write(notes / ".hidden" / "secret.md", "the hidden password is swordfish\n")
    write(notes / ".dotfile.md", "also hidden\n")
    (notes / "photo.jpg").write_bytes(b"\xff\xd8\xff\xe0")
    os.mkfifo(notes / "pipe.md")  # opening it would block forever
    os.symlink(notes / "nowhere.md", notes / "dangling.md")
    os.symlink(notes, notes / "unicode" / "loop")  # a folder that contains itself
    (notes / "folder.md").mkdir()  # a folder with a note's name is just a folder


@pytest.fixture
def messy(notes, settings):
    build_messy_folder(notes)
    settings = settings.model_copy(update={"knowledge_max_file_bytes": 1_000_000})
    return notes, settings


def test_every_format_is_indexed_and_bad_files_are_skipped_with_reasons(messy):
    notes, settings = messy
    before = tree_state(notes)
    report = Indexer(settings).run([notes])
    skipped = {Path(path).name: reason for path, reason in report.skipped}
    assert skipped == {
        "broken.pdf": skipped["broken.pdf"], "empty.md": "no text", "latin1.txt": skipped["latin1.txt"],
        "image.txt": "binary file", "huge.txt": skipped["huge.txt"], "pipe.md": "not a regular file",
        "dangling.md": skipped["dangling.md"],
    }
    assert skipped["broken.pdf"].startswith("corrupt PDF")
    assert skipped["latin1.txt"].startswith("not UTF-8 text")
    assert skipped["huge.txt"].startswith("too large")
    assert skipped["dangling.md"].startswith("unreadable")
    assert report.new == 7  # dentist, todo, family, study, food, vaccines, 日記
    folders = dict((Path(p).name, r) for p, r in report.skipped_folders)
    assert folders[".hidden"] == "hidden folder"
    assert folders["loop"].startswith("symlink loop")
    assert tree_state(notes) == before  # nothing written, touched or created in the notes
    text = format_report(report)
    assert "skipped: 7" in text and "not a regular file" in text


def test_indexed_content_is_searchable_and_invisible_text_is_not(messy):
    notes, settings = messy
    Indexer(settings).run([notes])
    with KnowledgeBase.open(settings) as kb:
        assert Path(kb.search("tetanus booster", 1)[0].path).name == "vaccines.pdf"
        assert Path(kb.search("favourite restaurant", 1)[0].path).name == "food.html"
        assert Path(kb.search("寿司 Zürich", 1)[0].path).name == "日記.md"
        assert Path(kb.search("sister Lisbon", 1)[0].path).name == "family.org"
        hits = kb.search("zebra swordfish hidden password", 5)
        assert all("zebra" not in p.text and "swordfish" not in p.text for p in hits)
        dentist = kb.search("Who is my dentist?", 1)[0]
        assert (dentist.heading, dentist.start_line, dentist.end_line) == ("Health > Dentist", 2, 3)


def _run_without_dac_override(args: list[str], env: dict) -> subprocess.CompletedProcess:
    """Tests run as root, and root reads any file whatever its mode; dropping the
    capabilities that let it (DAC override/read-search) makes chmod 000 bite again."""
    command = [sys.executable, "-m", "assistant.commands.personalize", *args]
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("running as root without setpriv: no way to make a file unreadable")
        command = [setpriv, "--bounding-set", "-dac_override,-dac_read_search", *command]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)


def test_a_file_without_read_permission_is_skipped_not_fatal(notes, settings):
    write(notes / "ok.md", "# Fine\nThis note is readable.\n")
    secret = write(notes / "locked.md", "# Locked\nNo one may read this.\n")
    secret.chmod(0o000)
    try:
        done = _run_without_dac_override([str(notes), "--quiet"], {**os.environ, "ASSISTANT_HOME": str(settings.home)})
    finally:
        secret.chmod(0o644)
    assert done.returncode == 0, done.stderr
    assert "locked.md: unreadable (Permission denied)" in done.stdout
    assert "new: 1" in done.stdout


def test_missing_path_is_a_clear_error(settings, tmp_path, capsys):
    from assistant.commands.personalize import main
    from assistant.knowledge.errors import SourceNotFoundError

    with pytest.raises(SourceNotFoundError, match="no such file or folder"):
        Indexer(settings).run([tmp_path / "absent"])
    assert main([str(tmp_path / "absent"), "--home", str(settings.home)]) == 1
    assert capsys.readouterr().err.strip() == f"error: no such file or folder: {tmp_path / 'absent'}"


def test_a_data_folder_inside_the_notes_is_never_indexed(notes, both_encoders_home):
    from knowledge_helpers import install_encoder
    from assistant.settings import Settings

    write(notes / "a.md", "# A\nA real note.\n")
    home = notes / "assistant-data"
    install_encoder(both_encoders_home, home)
    report = Indexer(Settings(home=home)).run([notes])
    assert report.new == 1 and report.scanned == 1
    assert (str(home), "the assistant's data folder") in report.skipped_folders
