"""The knowledge benchmarks run in quick mode and produce sane figures."""
from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # long: skipped by `make test-fast`, run by `make test`

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "knowledge"


def run_quick(script: str, out: Path, *extra: str) -> tuple[dict, float]:
    started = time.monotonic()
    done = subprocess.run([sys.executable, str(BENCH / script), "--quick", "--out", str(out), *extra],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(out.read_text()), time.monotonic() - started


def test_retrieval_benchmark_quick(tmp_path, settings):
    result, seconds = run_quick("bench_retrieval.py", tmp_path / "retrieval.json", "--home", str(settings.home))
    assert result["retrieval"]["questions"] == 9
    assert result["retrieval"]["hit@4"] >= 0.85
    assert len(result["answers"]["answers"]) == 4
    assert result["answers"]["containment"] >= 0.5  # 0.75 over all 44 questions
    print(f"bench_retrieval --quick: {seconds:.1f} s")  # < 60 s on an idle 2-core machine


def test_index_benchmark_quick(tmp_path, encoder_home):
    result, seconds = run_quick("bench_index.py", tmp_path / "index.json", "--encoder-home", str(encoder_home))
    size = result["sizes"]["200"]
    assert size["recall@10"] >= 0.95
    assert 0 < size["p50_ms"] <= size["p95_ms"]
    assert size["rss_mb"] > 0 and size["torch_imported"] is False
    assert result["throughput"]["chunks_per_s"] > 0 and result["throughput"]["unchanged_rerun_s"] < 1.0
    print(f"bench_index --quick: {seconds:.1f} s")  # < 60 s on an idle 2-core machine
