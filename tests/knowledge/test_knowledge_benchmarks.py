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


def test_index_benchmark_quick(bench_quick):
    out_dir, _ = bench_quick  # `make bench-quick` ran it, once per session
    result = json.loads((out_dir / "data" / "knowledge_index.json").read_text())
    seconds = result["seconds"]
    assert result["machine"]["cpu"] and result["machine"]["cores"] >= 1
    assert list(result["sizes"]) == ["1000", "5000"]
    for size in result["sizes"].values():
        assert size["recall@10"] >= 0.95 and size["recall@10_ef1024"] >= size["recall@10_ef64"]
        assert 0 < size["p50_ms"] <= size["p95_ms"] < 2000
        for stage in ("embed", "lexical", "vector", "fusion"):  # the search's own stage timings
            assert 0 < size[f"{stage}_p50_ms"] <= size[f"{stage}_p95_ms"]
        assert size["build_chunks_per_s"] > 0 and size["index_mb"] > 0
        assert size["rss_mb"] > 0 and size["torch_imported"] is False
    assert result["sizes"]["5000"]["index_mb"] > result["sizes"]["1000"]["index_mb"]
    runs = result["personalize"]
    assert [r["files"] for r in runs] == [3, 10] and runs[0]["chunks"] < runs[1]["chunks"]
    assert all(r["chunks_per_s"] > 0 and r["unchanged_rerun_s"] < 1.0 for r in runs)
    serve = result["serve"]  # `assistant serve` over the 5k index, after one RAG answer
    assert serve["index_chunks"] == 5000 and serve["strategy"] == "rag" and serve["sources"] >= 1, serve
    assert 100 < serve["vm_rss_mb"] <= serve["vm_hwm_mb"] < 4000
    print(f"bench_index --quick: {seconds:.1f} s")  # < 60 s on an idle 2-core machine


def test_encoder_benchmark_quick(tmp_path, both_encoders_home):
    result, seconds = run_quick("bench_encoder.py", tmp_path / "encoder.json", "--encoder-home", str(both_encoders_home))
    assert result["questions"] == {"knowledge": 9, "router": 45} and result["texts"] == 40
    fp32, int8 = result["encoders"]["all-MiniLM-L6-v2"], result["encoders"]["all-MiniLM-L6-v2-int8"]
    assert fp32["cosine_to_fp32"]["min"] > 0.9999 and int8["cosine_to_fp32"]["min"] >= 0.98
    assert int8["file_mb"] < 0.3 * fp32["file_mb"]
    for row in (fp32, int8):  # memory is reported, not asserted: it depends on the machine
        assert 0 < row["query_p50_ms"] <= row["query_p90_ms"] and row["index_texts_per_s"] > 0
        assert row["knowledge"]["hybrid"]["hit@4"] >= 0.85 and row["router"]["hybrid"]["hit@4"] >= 0.85
    print(f"bench_encoder --quick: {seconds:.1f} s")  # about 40 s on a busy 2-core machine
