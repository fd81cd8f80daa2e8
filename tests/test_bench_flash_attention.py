"""The flash-attention benchmark's quick mode: both variants measured, every figure a number."""
from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest

from tests.helpers import REPO_ROOT


@pytest.mark.slow
def test_flash_attention_benchmark_quick(tmp_path):
    out = tmp_path / "flash_attention.json"
    done = subprocess.run([sys.executable, "benchmarks/bench_flash_attention.py", "--quick", "--out", str(out)],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    data = json.loads(out.read_text())
    model = data["models"]["smollm2-135m-instruct"]
    assert data["config"]["kv_cache_type"] == "f16" and data["config"]["rounds"] == 2
    assert 100 < model["rag_prompt_tokens"] < 600  # two notes in the quick run
    for variant in ("off", "on"):
        figures = model["variants"][variant]
        assert set(figures) == {"prefill_tps_median", "decode_tps_median", "decode_after_rag_tps_median",
                                "rag_answer_tps_median"}
        assert all(math.isfinite(v) and v > 0 for v in figures.values())
    for measure, ratio in model["ratios"].items():
        low, high = ratio["ci95"]
        assert len(ratio["per_round"]) == 2 and low <= ratio["median"] <= high, measure
        off, on = (model["variants"][v][f"{measure}_tps_median"] for v in ("off", "on"))
        assert 0.2 < on / off < 5  # the same work on both sides, not two different things
    assert 0.0 <= model["tokens_agree_share"] <= 1.0
    assert "on/off" in done.stdout
