"""The benchmarks' --quick modes run end to end and write what they promise."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.helpers import REPO_ROOT


@pytest.mark.slow
def test_serving_benchmark_quick(tmp_path):
    out = tmp_path / "serving.json"
    result = subprocess.run([sys.executable, "benchmarks/bench_serving.py", "--quick", "--out", str(out)],
                            cwd=REPO_ROOT, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr
    report = json.loads(out.read_text())
    for name in ("assistant serve", "direct Llama.generate", "direct create_chat_completion", "llama_cpp.server"):
        assert report["results"][name]["decode_tps_median"] > 0
        assert report["results"][name]["runs"] == 2
    assert report["results"]["assistant serve"]["rss_mb"] > 50
    assert set(report["ratios"]) == {"vs_direct_generate_decode", "vs_direct_chat_completion_decode",
                                     "vs_peer_decode", "vs_peer_ttft"}
    assert "| assistant serve |" in result.stdout


@pytest.mark.slow
def test_adapter_benchmark_quick(tmp_path):
    out = tmp_path / "adapters.json"
    result = subprocess.run([sys.executable, "benchmarks/bench_adapters.py", "--quick", "--out", str(out)],
                            cwd=REPO_ROOT, capture_output=True, text=True, timeout=1200)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["training_tokens_per_s"] > 0
    assert 0 < report["switch_ms_median"] < 1000
    assert report["perplexity_adapter"] <= report["perplexity_base"]
    assert set(report["val_loss_by_budget"]) == {"5", "10", "15"}
    assert len(report["grid"]) == 4 and {row["data"] for row in report["grid"]} == {0.5, 1.0}
    assert "| budget (s) | best validation loss |" in result.stdout


@pytest.mark.slow
def test_load_benchmark_quick(tmp_path):
    """64 requests at concurrency 8, a quarter leaving mid-stream: every accepted request
    completes, nothing but 503 (with Retry-After) fails, no place leaks, memory stays flat."""
    out = tmp_path / "load.json"
    result = subprocess.run([sys.executable, "benchmarks/load.py", "--quick", "--out", str(out)],
                            cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
    report = json.loads(out.read_text())
    assert result.returncode == 0 and report["ok"], report
    assert report["requests"] == 64 and sum(report["statuses"].values()) == 64
    assert report["left_mid_stream"] > 0 and report["in_progress_at_end"] == 0
    assert report["other_failures"] == 0 and report["503_without_retry_after"] == 0
