"""The prompt-processing benchmark: its quick mode runs, shows the reuse, and the report
section renders from what it wrote."""
from __future__ import annotations

import json

import pytest



@pytest.mark.slow
def test_prefill_benchmark_quick_and_its_report(bench_quick, tmp_path):
    from benchmarks.report import prefill

    out_dir, _ = bench_quick  # the quick run of every benchmark, once per session
    data = json.loads((out_dir / "data" / prefill.RESULT).read_text())
    model = data["models"]["smollm2-135m-instruct"]
    assert [row["n_batch"] for row in model["sweep"]] == data["config"]["batches"]
    assert model["ttft"]["before"]["warm"]["cached_tokens"] == 0
    assert model["ttft"]["after"]["warm"]["cached_tokens"] >= data["config"]["n_batch"]
    assert model["ttft"]["same_text_before_after"]
    assert len(model["scaling"]) == len(data["config"]["lengths"])
    section = prefill.render(out_dir / "data", tmp_path / "plots")
    assert "TTFT before (s)" in section and "Goal met" in section
    assert (tmp_path / "plots" / "prefill_scaling.png").is_file()
