"""Fixtures: a temporary ASSISTANT_HOME for every test, and one real server per session."""
from __future__ import annotations

import os

# Before anything imports torch: see assistant/learn/__init__.py (spinning OpenMP threads).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import openai
import pytest

from tests.helpers import ServerProcess

API_KEY = "test-key-123"


@pytest.fixture(autouse=True)
def assistant_home(tmp_path, monkeypatch):
    """Every test writes only under its own temporary data dir."""
    home = tmp_path / "assistant-home"
    monkeypatch.setenv("ASSISTANT_HOME", str(home))
    return home


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    """One real ``assistant serve`` (default model, API key set, small queue) for the session."""
    home = tmp_path_factory.mktemp("server-home")
    proc = ServerProcess(home, "--api-key", API_KEY, "--queue-size", "2", "--n-ctx", "1024",
                         "--max-body-bytes", "200000")
    try:
        proc.wait_ready()
        yield proc
    finally:
        proc.stop()


@pytest.fixture(scope="session")
def client(server):
    """The official openai client pointed at the server (no retries: we test statuses)."""
    return openai.OpenAI(base_url=f"{server.base_url}/v1", api_key=API_KEY, max_retries=0, timeout=300)


@pytest.fixture(scope="session")
def bench_quick(tmp_path_factory):
    """`make bench-quick` once per session: (report folder, finished process). The benchmark
    tests read their JSON from its data/ folder instead of running each benchmark again."""
    import subprocess
    import sys

    from tests.helpers import REPO_ROOT

    out = tmp_path_factory.mktemp("bench-quick")
    done = subprocess.run([sys.executable, "benchmarks/run_all.py", "--quick", "--out", str(out)], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=1500)
    return out, done
