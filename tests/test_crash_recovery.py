"""SIGKILL in the middle of adapter training and of calibration: the active adapter and
the calibration table are each the previous complete version or the new complete one,
never a mix, and the server starts and serves with them. (The index under SIGKILL:
tests/knowledge/test_knowledge_crash.py.)"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from assistant.learn.registry import AdapterRegistry
from assistant.models.gguf_info import read_gguf_info
from assistant.router.calibration import CalibrationTable
from assistant.settings import Settings
from tests.helpers import REPO_ROOT, ServerProcess
from tests.router.conftest import write_notes

pytestmark = pytest.mark.slow


def cli(home, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "assistant.cli", *args, "--home", str(home)], cwd=REPO_ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "ASSISTANT_HOME": str(home)})


def kill_when(proc: subprocess.Popen, ready, timeout_s: float = 240) -> None:
    """SIGKILL ``proc`` as soon as ``ready()`` holds (it must still be running then)."""
    deadline = time.monotonic() + timeout_s
    while not ready():
        assert proc.poll() is None, f"finished before the kill: {proc.stdout.read()[-2000:]}"
        assert time.monotonic() < deadline, "never got to the point of the kill"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)


def test_killed_training_and_calibration_leave_complete_versions(tmp_path):
    home = tmp_path / "home"
    settings = Settings(home=home)
    notes = write_notes(tmp_path / "notes")
    assert cli(home, "personalize", str(notes), "--quiet").wait(300) == 0
    assert cli(home, "learn", "--budget", "5", "--profile", "laptop-16gb", "--quiet").wait(600) == 0
    registry = AdapterRegistry(settings)
    first = registry.active_name()
    assert first is not None

    # Kill a second training in its loop (its progress file shows steps) and at export.
    training = cli(home, "learn", "--budget", "120", "--profile", "laptop-16gb")
    started = time.monotonic()
    kill_when(training, lambda: time.monotonic() - started > 15)
    assert registry.active_name() == first
    for row in registry.list():  # every adapter file that exists is complete and readable
        assert read_gguf_info(Path(row["path"])).tensor_shapes
    assert not [p for p in settings.layout.adapters.glob("*.gguf") if p.stem not in {r["name"] for r in registry.list()}]

    # Kill calibration while it measures (the table did not exist before).
    calibrating = cli(home, "calibrate", "--profile", "laptop-16gb", "--n-ctx", "512")
    started = time.monotonic()
    kill_when(calibrating, lambda: time.monotonic() - started > 6)
    table_path = settings.layout.calibration
    assert not table_path.exists() or CalibrationTable.load(settings) is not None

    server = ServerProcess(home, "--n-ctx", "512", "--profile", "laptop-16gb")
    try:
        server.wait_ready()
        answer = httpx.post(f"{server.base_url}/v1/chat/completions", timeout=120, json={
            "messages": [{"role": "user", "content": "Who is my manager?"}], "strategy": "rag+adapter",
            "max_tokens": 8})
        assert answer.status_code == 200, answer.text
        assert answer.json()["plan"]["adapter"] == first
    finally:
        server.stop()
    json.loads(json.dumps(registry.list(), default=str))  # the registry still lists cleanly
