"""The knowledge benchmarks run in quick mode and produce sane figures."""
from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "knowledge"


def run_quick(script: str, out: Path, *extra: str) -> tuple[dict, float]:
    started = time.monotonic()
    done = subprocess.run([sys.executable, str(BENCH / script), "--quick", "--out", str(out), *extra],
                          capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(out.read_text()), time.monotonic() - started


def test_retrieval_benchmark_quick(tmp_path, settings):
    result, seconds = run_quick("bench_retrieval.py", tmp_path / "retrieval.json", "--home", str(settings.home))
    assert result["retrieval"]["questions"] == 9
    assert result["retrieval"]["hit@4"] >= 0.85
    assert 0.0 <= result["answers"]["containment"] <= 1.0 and len(result["answers"]["answers"]) == 9
    assert seconds < 90  # 60 s on an idle machine; CI boxes are shared


def test_index_benchmark_quick(tmp_path, encoder_home):
    result, seconds = run_quick("bench_index.py", tmp_path / "index.json", "--encoder-home", str(encoder_home))
    size = result["sizes"]["200"]
    assert size["recall@10"] >= 0.95
    assert 0 < size["p50_ms"] <= size["p95_ms"]
    assert size["rss_mb"] > 0 and size["torch_imported"] is False
    assert result["throughput"]["chunks_per_s"] > 0 and result["throughput"]["unchanged_rerun_s"] < 1.0
    assert seconds < 90
