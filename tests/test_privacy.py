"""Private by default: what the assistant writes is its owner's alone, personalize stays
inside the folders it was given, logs carry no note text or prompts, and nothing needs
the network (personalize, chat, serve and learn run in a namespace with only loopback)."""
from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import textwrap

import httpx
import pytest

from tests.helpers import REPO_ROOT, ServerProcess

pytestmark = pytest.mark.slow  # long: skipped by `make test-fast`, run by `make test`

NOTE_SECRET = "ZEBRAQUARTZ"  # words that must never reach a log
PROMPT_SECRET = "PLATYPUSPROMPT"


def assistant(*args: str, home, timeout=300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "assistant.cli", *args, "--home", str(home)], capture_output=True,
                          text=True, timeout=timeout, cwd=REPO_ROOT)


def notes_folder(tmp_path):
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "bike.md").write_text(f"# Bike\n\nThe bike lock code is {NOTE_SECRET} 4721.\n")
    (notes / "rent.md").write_text("# Rent\n\nThe rent of 1450 euros is due on the first of the month.\n")
    return notes


def test_data_is_created_for_its_owner_only(tmp_path):
    home = tmp_path / "home"
    result = assistant("personalize", str(notes_folder(tmp_path)), "--quiet", home=home)
    assert result.returncode == 0, result.stderr
    for path in [home, *home.rglob("*")]:
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode & 0o077 == 0, f"{path} is {oct(mode)}: readable by others"
    assert stat.S_IMODE((home / "knowledge" / "index.sqlite").stat().st_mode) == 0o600


def test_personalize_does_not_follow_a_symlink_out_of_the_folder(tmp_path):
    notes, secrets = notes_folder(tmp_path), tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "keys.md").write_text("# Keys\n\nThe server password is hunter2 OCELOTKEY.\n")
    (notes / "linked").symlink_to(secrets)
    (notes / "inside-link.md").symlink_to(notes / "rent.md")  # a link that stays inside is fine
    home = tmp_path / "home"
    result = assistant("personalize", str(notes), "--quiet", home=home)
    assert result.returncode == 0 and "symlink out of the notes folder" in result.stdout, result.stdout
    assert "OCELOTKEY" not in assistant("search", "OCELOTKEY server password", home=home).stdout
    assert sorted(p.name for p in notes.iterdir()) == ["bike.md", "inside-link.md", "linked", "rent.md"]  # nothing written
    followed = assistant("personalize", str(notes), "--quiet", "--follow-symlinks", home=home)
    assert followed.returncode == 0, followed.stderr
    assert "keys.md" in assistant("search", "OCELOTKEY server password", home=home).stdout


def test_logs_carry_no_note_text_or_prompts(tmp_path):
    home = tmp_path / "home"
    assert assistant("personalize", str(notes_folder(tmp_path)), "--quiet", home=home).returncode == 0
    server = ServerProcess(home, "--n-ctx", "512", "--log-level", "info")
    try:
        server.wait_ready()
        response = httpx.post(f"{server.base_url}/v1/chat/completions", timeout=120, json={
            "messages": [{"role": "user", "content": f"{PROMPT_SECRET}: what is my bike lock code?"}],
            "strategy": "rag", "max_tokens": 8})
        assert response.status_code == 200 and response.json()["sources"]
    finally:
        server.stop()
    log = server.log_path.read_text()
    assert "loaded model" in log  # info logging was on
    assert NOTE_SECRET not in log and PROMPT_SECRET not in log


NO_NETWORK = shutil.which("unshare") and shutil.which("ip") and os.geteuid() == 0


@pytest.mark.skipif(not NO_NETWORK and os.environ.get("CI") != "true",
                    reason="needs root, unshare and ip (iproute2) for a network namespace")
def test_everything_works_with_only_loopback(tmp_path):
    notes, home = notes_folder(tmp_path), tmp_path / "home"
    for index in range(4):  # learn needs a few notes to split into training and validation
        (notes / f"note{index}.md").write_text(f"# Note {index}\n\nThe item {index} is kept in box {index * 7}.\n")
    cli = f"{sys.executable} -m assistant.cli"
    script = textwrap.dedent(f"""
        set -e
        ip link set lo up
        export ASSISTANT_HOME={home} HF_HUB_OFFLINE=0 TRANSFORMERS_OFFLINE=0
        unset ASSISTANT_ENCODER_EXPORTS  # the encoder is exported here, offline, as a new install does
        {cli} personalize {notes} --quiet
        {cli} chat "Where is item 2 kept?" --strategy rag --max-tokens 8 --n-ctx 512 --quiet
        {cli} learn --budget 5 --profile laptop-16gb
        {cli} serve --port 18765 --n-ctx 512 --log-level warning &
        server=$!
        for i in $(seq 1 120); do
            {sys.executable} -c "import httpx,sys; sys.exit(httpx.get('http://127.0.0.1:18765/health').status_code != 200)" \\
                2>/dev/null && break
            sleep 0.5
        done
        {sys.executable} -c "import httpx; r = httpx.post('http://127.0.0.1:18765/v1/chat/completions', timeout=60, \\
            json={{'messages': [{{'role': 'user', 'content': 'Where is item 2 kept?'}}], 'max_tokens': 8}}); \\
            assert r.status_code == 200, r.text; print('served', r.json()['plan']['strategy'])"
        kill $server
    """)
    result = subprocess.run(["unshare", "-n", "bash", "-c", script], capture_output=True, text=True, timeout=900,
                            cwd=REPO_ROOT)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    assert "served" in result.stdout
