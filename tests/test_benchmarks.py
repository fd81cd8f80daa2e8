"""The benchmarks' --quick modes run end to end and write what they promise."""
from __future__ import annotations

import json
import subprocess
import sys

from tests.helpers import REPO_ROOT


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
