"""Fixtures for the knowledge tests: a real ONNX encoder exported once per session and
copied into each test's temporary ``ASSISTANT_HOME``; real notes folders on disk."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from assistant.knowledge.encoders import ENCODERS, ensure_onnx
from assistant.settings import Settings
from knowledge_helpers import install_encoder

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="session")
def both_encoders_home(encoder_home) -> Path:
    """The session's encoder home (tests/conftest.py) with the fp32 encoder exported too,
    for the tests that compare the two."""
    for spec in ENCODERS.values():
        ensure_onnx(Settings(home=encoder_home, encoder_exports=None), spec)
    return encoder_home


@pytest.fixture
def settings(tmp_path, both_encoders_home, monkeypatch) -> Settings:
    """Settings for a fresh temporary data dir (also exported as ASSISTANT_HOME for
    subprocesses and CLI entry points)."""
    home = tmp_path / "home"
    install_encoder(both_encoders_home, home)
    monkeypatch.setenv("ASSISTANT_HOME", str(home))
    return Settings(home=home)


@pytest.fixture
def notes(tmp_path) -> Path:
    """An empty notes folder, separate from the data dir."""
    folder = tmp_path / "notes"
    folder.mkdir()
    return folder


@pytest.fixture(scope="session")
def engine(tmp_path_factory):
    """The real default GGUF model (SmolLM2-135M-Instruct), loaded once."""
    from assistant.models.catalog import resolve_model
    from assistant.models.engine import Engine

    settings = Settings(home=tmp_path_factory.mktemp("engine-home"))
    return Engine(resolve_model("default", settings), n_ctx=2048, n_threads=2)
