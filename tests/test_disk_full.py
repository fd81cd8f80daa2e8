"""A full disk: ``personalize`` says so in one line, exits non-zero, and the previous index
stays usable. The data folder is a small tmpfs mounted for the test (needs root)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid

import pytest

from tests.helpers import REPO_ROOT

pytestmark = pytest.mark.slow  # long: skipped by `make test-fast`, run by `make test`


@pytest.fixture()
def small_disk(tmp_path):
    """Mount a tmpfs of the size asked for; unmounted after the test."""
    mounts = []

    def mount(size_mb: int):
        folder = tmp_path / f"disk-{uuid.uuid4().hex[:6]}"
        folder.mkdir()
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_mb}M", "tmpfs", str(folder)],
                              capture_output=True, text=True)
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip()}); needs root")
        mounts.append(folder)
        return folder

    yield mount
    for folder in mounts:
        subprocess.run(["umount", str(folder)], capture_output=True)


def personalize(home, notes, export: bool = False) -> subprocess.CompletedProcess:
    """``personalize`` in a subprocess; ``export``: the encoder is exported, not copied from
    the session's export (tests/conftest.py)."""
    env = {k: v for k, v in os.environ.items() if not (export and k == "ASSISTANT_ENCODER_EXPORTS")}
    return subprocess.run([sys.executable, "-m", "assistant.cli", "personalize", str(notes), "--home", str(home),
                           "--quiet"], capture_output=True, text=True, timeout=300, cwd=REPO_ROOT, env=env)


def notes_in(folder, count: int, words: int = 8):
    folder.mkdir(exist_ok=True)
    for i in range(count):
        (folder / f"note{i}.md").write_text(f"# Note {i}\n\nThe item {i} is in box {i}. " + "word " * words + "\n")
    return folder


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")
def test_a_full_disk_is_one_clear_line_and_the_old_index_stays(small_disk, tmp_path):
    notes = notes_in(tmp_path / "notes", 5)
    tiny = small_disk(20)  # too small even for the encoder's ONNX model (22 MB), exported or copied
    for export in (True, False):
        first = personalize(tiny / "home", notes, export=export)
        assert first.returncode == 1 and first.stderr.startswith("error: no space left on the disk holding")
        assert len(first.stderr.strip().splitlines()) == 1 and "extras" not in first.stderr
        assert not (tiny / "home/knowledge/encoders/all-MiniLM-L6-v2-int8").exists()  # nothing half-made
    disk = small_disk(150)
    home = disk / "home"
    assert personalize(home, notes).returncode == 0
    free_kb = shutil.disk_usage(disk).free // 1024
    (disk / "filler").write_bytes(b"\0" * (free_kb - 40) * 1024)  # leave 40 KB
    notes_in(notes, 300, words=300)
    full = personalize(home, notes)
    assert full.returncode == 1, full.stdout + full.stderr
    assert full.stderr.startswith("error: no space left on the disk holding") and "Traceback" not in full.stderr
    assert len(full.stderr.strip().splitlines()) == 1
    search = subprocess.run([sys.executable, "-m", "assistant.cli", "search", "item 3 box", "--home", str(home)],
                            capture_output=True, text=True, timeout=120, cwd=REPO_ROOT)
    assert search.returncode == 0 and "note3.md" in search.stdout  # the previous index answers
