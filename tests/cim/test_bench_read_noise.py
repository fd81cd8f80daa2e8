"""``benchmarks/cim/bench_read_noise.py --quick`` runs and reports both modes on both paths."""

import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_read_noise_benchmark_quick(tmp_path):
    spec = importlib.util.spec_from_file_location("bench_read_noise", ROOT / "benchmarks" / "cim" / "bench_read_noise.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = tmp_path / "read_noise.json"
    assert module.main(["--quick", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert set(result["results"]) == {f"{p}/{m}" for p in ("fast", "adc") for m in ("device-referred", "output-referred")}
    assert all(len(r["samples"]) == 2 and r["median_s_per_layer_token"] > 0 for r in result["results"].values())
    assert result["weights_per_layer"] == 3_538_944  # SmolLM2-135M: 576 * (576*2 + 192*2 + 1536*3)
