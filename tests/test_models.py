"""Catalog, GGUF header metadata, memory guard and pulling, on the real shipped models."""
from __future__ import annotations

import functools
import http.server
import threading

import pytest

from assistant.errors import ModelFileError, ModelNotFoundError, ModelTooLargeError, OfflineError
from assistant.models.catalog import DEFAULT_MODEL, find_entry, resolve_model
from assistant.models.gguf_info import read_gguf_info
from assistant.models.memory import check_fits, estimate_memory
from assistant.models.pool import ModelPool
from assistant.models.pull import pull_model
from assistant.profiles import load_profile
from assistant.settings import Settings
from tests.helpers import free_port, write_gguf


@pytest.fixture
def settings(assistant_home):
    return Settings(home=assistant_home)


def test_default_model_metadata_from_header(settings):
    model = resolve_model("default", settings)
    assert model.name == DEFAULT_MODEL
    summary = model.info.summary()
    assert summary["architecture"] == "llama"
    assert summary["quantization"] == "Q4_1"
    assert summary["context_length"] == 8192
    assert summary["chat_template"] is True
    assert 130e6 < summary["parameters"] < 140e6


def test_gemma_is_assembled_once_with_checksum(settings):
    model = resolve_model("gemma3-270m", settings)
    assert model.path.parent == settings.models_dir
    assert model.info.architecture == "gemma3"
    assert model.info.quantization == "Q4_K_M"
    assert model.info.chat_template is None
    marker = model.path.with_suffix(".gguf.sha256")
    assert marker.is_file()
    mtime = model.path.stat().st_mtime_ns
    assert resolve_model("gemma3-270m", settings).path.stat().st_mtime_ns == mtime  # not re-assembled


def test_gemma_corrupted_on_disk_is_reassembled(settings):
    path = resolve_model("gemma3-270m", settings).path
    path.with_suffix(".gguf.sha256").write_text("0" * 64)  # a stale or foreign checksum marker
    with path.open("r+b") as handle:
        handle.seek(1000)
        handle.write(b"corrupt")
    model = resolve_model("gemma3-270m", settings)
    from assistant.models.catalog import sha256_file, _gemma_expected_sha256

    assert sha256_file(model.path) == _gemma_expected_sha256()


def test_local_path_and_unknown_names(settings, tmp_path):
    local = write_gguf(tmp_path / "tiny.gguf")
    entry = find_entry(str(local), settings)
    assert entry.source == "local"
    with pytest.raises(ModelNotFoundError, match="unknown model 'nope'"):
        find_entry("nope", settings)
    with pytest.raises(ModelNotFoundError, match="not found"):
        find_entry(str(tmp_path / "missing.gguf"), settings)


def test_not_a_gguf_file_is_refused(tmp_path):
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"<html>404</html>")
    with pytest.raises(ModelFileError, match="not a GGUF"):
        read_gguf_info(bad)
    truncated = tmp_path / "truncated.gguf"
    truncated.write_bytes(write_gguf(tmp_path / "ok.gguf").read_bytes()[:40])
    with pytest.raises(ModelFileError):
        read_gguf_info(truncated)


def test_memory_estimate_grows_with_context(settings):
    info = resolve_model("default", settings).info
    small, large = estimate_memory(info, 512), estimate_memory(info, 8192)
    assert small.weights_mb == pytest.approx(info.file_size_bytes / 2**20)
    # SmolLM2: 30 layers x 3 KV heads x 64 dims x (K+V) x f16 = 23,040 bytes per token.
    assert large.kv_cache_mb == pytest.approx(8192 * 23040 / 2**20)
    assert large.total_mb > small.total_mb


def test_memory_guard_refuses_too_large_model_on_2gb_pi(settings, tmp_path):
    huge = write_gguf(tmp_path / "huge.gguf", blocks=32, embd=4096, heads=32, sparse_size_bytes=4 * 1024**3)
    info = read_gguf_info(huge)
    pi = load_profile("raspberry-pi-4-2gb")
    with pytest.raises(ModelTooLargeError, match="raspberry-pi-4-2gb") as exc_info:
        check_fits("huge", estimate_memory(info, pi.max_context), pi)
    assert exc_info.value.code == "model_too_large"
    # The real default model fits the same profile.
    small = resolve_model("default", settings).info
    check_fits("default", estimate_memory(small, pi.max_context), pi, available_mb=4096)
    # And the free RAM is checked too, whatever the profile says.
    with pytest.raises(ModelTooLargeError, match="free"):
        check_fits("default", estimate_memory(small, pi.max_context), pi, available_mb=50)


def test_pool_refuses_before_loading(settings, tmp_path):
    huge = write_gguf(tmp_path / "huge.gguf", sparse_size_bytes=8 * 1024**3)
    pool = ModelPool(settings.model_copy(update={"model": str(huge)}), load_profile("raspberry-pi-4-2gb"))
    with pytest.raises(ModelTooLargeError):
        pool.get()
    assert pool.loaded() == {}


def test_pull_offline_is_one_clear_error(settings):
    closed = settings.model_copy(update={"hub_url": f"http://127.0.0.1:{free_port()}"})
    with pytest.raises(OfflineError, match="cannot reach 127.0.0.1"):
        pull_model(closed, "org/repo", "model.gguf", timeout_s=5)
    assert not list(settings.models_dir.glob("*.gguf"))


def test_pull_from_a_local_hub_and_refuse_non_gguf(settings, tmp_path):
    repo_dir = tmp_path / "hub" / "org" / "repo" / "resolve" / "main"
    repo_dir.mkdir(parents=True)
    write_gguf(repo_dir / "tiny.gguf")
    (repo_dir / "page.gguf").write_text("<html>login required</html>")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path / "hub"))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        local_hub = settings.model_copy(update={"hub_url": f"http://127.0.0.1:{httpd.server_address[1]}"})
        path = pull_model(local_hub, "org/repo", "tiny.gguf")
        assert path == settings.models_dir / "tiny.gguf"
        assert find_entry("tiny", settings).source == "pulled"
        with pytest.raises(ModelFileError):
            pull_model(local_hub, "org/repo", "page.gguf")
        assert not (settings.models_dir / "page.gguf").exists()
        assert not list(settings.models_dir.glob(".pull-*"))
    finally:
        httpd.shutdown()
