"""Fixtures: a temporary ASSISTANT_HOME for every test, and one real server per session."""
from __future__ import annotations

import os

# Before anything imports torch: see assistant/learn/__init__.py (spinning OpenMP threads).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import openai
import pytest

from tests.helpers import ServerProcess

API_KEY = "test-key-123"


@pytest.fixture(scope="session", autouse=True)
def encoder_home(request, tmp_path_factory):
    """A home whose default sentence encoder was exported once (kept in pytest's cache
    between sessions; ``ensure_onnx`` exports again if the model files changed). Every home
    a test makes, and every server, CLI and benchmark it starts, copies the export from
    here (``ASSISTANT_ENCODER_EXPORTS``) instead of exporting again (~20 s each). The
    tests of the export itself unset it."""
    from assistant.knowledge.encoders import DEFAULT_ENCODER, ENCODERS, ensure_onnx
    from assistant.settings import Settings

    cache = getattr(request.config, "cache", None)
    home = cache.mkdir("knowledge-encoder-home") if cache is not None else tmp_path_factory.mktemp("encoder-home")
    settings = Settings(home=home, encoder_exports=None)
    ensure_onnx(settings, ENCODERS[DEFAULT_ENCODER])
    os.environ["ASSISTANT_ENCODER_EXPORTS"] = str(settings.layout.encoders)
    yield home
    os.environ.pop("ASSISTANT_ENCODER_EXPORTS", None)


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
