"""The benchmarks' --quick modes run end to end and write what they promise."""
from __future__ import annotations

import json

import pytest



def test_curve_recorder_and_time_to_within():
    """Validation time is the gap before each eval event; the 5% times are the first
    validations under best x 1.05 and under best + 5% of the gain."""
    from benchmarks.bench_adapters import CurveRecorder, time_to_within

    recorder = CurveRecorder()
    for event in ({"kind": "step", "seconds": 2.0}, {"kind": "eval", "seconds": 3.0, "step": 1, "val_loss": 2.5},
                  {"kind": "step", "seconds": 4.0}, {"kind": "eval", "seconds": 5.5, "step": 2, "val_loss": 2.05},
                  {"kind": "step", "seconds": 6.0}, {"kind": "eval", "seconds": 7.0, "step": 3, "val_loss": 2.0}):
        recorder(event)
    assert recorder.validation_s == pytest.approx(1.0 + 1.5 + 1.0)
    assert [p["train_seconds"] for p in recorder.points] == pytest.approx([2.0, 3.0, 3.5])
    points = [{"seconds": 1.0, "train_seconds": 0.0, "step": 0, "val_loss": 2.6}] + recorder.points
    reach = time_to_within(points, best=2.0, initial=2.6)
    assert reach["within_of_best"]["step"] == 2 and reach["within_of_best"]["threshold"] == pytest.approx(2.1)
    assert reach["of_gain"]["step"] == 3 and reach["of_gain"]["threshold"] == pytest.approx(2.03)


@pytest.mark.slow
def test_adapter_benchmark_quick(bench_quick):
    """One training run's validation curve, the time to within 5% of its best read off it,
    training tokens/s and switch times on a real engine, all sane."""
    out_dir, _ = bench_quick  # `make bench-quick` ran it, once per session
    report = json.loads((out_dir / "data" / "adapters.json").read_text())
    assert 1 < report["training_tokens_per_s_with_validation"] < report["training_tokens_per_s"] < 1e6
    assert report["trained_tokens"] > 0 and report["steps"] > 0
    curve = report["curve"]
    assert len(curve) >= 2 and curve[0]["step"] == 0 and curve[0]["val_loss"] == report["initial_val_loss"]
    assert all(b["seconds"] > a["seconds"] and b["step"] >= a["step"] for a, b in zip(curve, curve[1:]))
    assert all(0 <= p["train_seconds"] <= p["seconds"] for p in curve)
    assert report["best_val_loss"] == min(p["val_loss"] for p in curve) <= report["initial_val_loss"]
    assert report["train_seconds"] <= report["config"]["curve_budget_s"] * 1.5
    assert 0 < report["validation_seconds"] < report["train_seconds"]
    best = min(curve, key=lambda p: p["val_loss"])
    assert report["best_at"] == {"seconds": best["seconds"], "step": best["step"], "last": best == curve[-1]}
    reach = report["time_to_within_5pct"]
    for key, threshold in (("within_of_best", report["best_val_loss"] * 1.05),
                           ("of_gain", report["best_val_loss"] + 0.05 * (report["initial_val_loss"]
                                                                          - report["best_val_loss"]))):
        assert reach[key]["threshold"] == pytest.approx(threshold)
        first = next(p for p in curve if p["val_loss"] <= threshold + 1e-12)
        assert (reach[key]["seconds"], reach[key]["step"]) == (first["seconds"], first["step"])
        assert 0 <= reach[key]["train_seconds"] <= reach[key]["seconds"] <= curve[-1]["seconds"]
    assert len(report["switch_ms"]) == report["config"]["switch_toggles"]
    assert 0 < report["switch_ms_median"] <= report["switch_ms_p95"] <= report["switch_ms_max"] < 1000
    assert report["perplexity_adapter"] <= report["perplexity_base"]
    assert len(report["grid"]) == 1 and report["grid"][0]["data"] == 0.5


@pytest.mark.slow
def test_load_benchmark_quick(bench_quick):
    """32 requests at concurrency 8, a quarter leaving mid-stream: every accepted request
    completes, nothing but 503 (with Retry-After) fails, no place leaks, memory stays flat."""
    out_dir, _ = bench_quick  # `make bench-quick` ran it
    report = json.loads((out_dir / "data" / "load.json").read_text())
    assert report["ok"], report
    assert report["requests"] == 32 and sum(report["statuses"].values()) == 32
    assert report["left_mid_stream"] > 0 and report["in_progress_at_end"] == 0
    assert report["other_failures"] == 0 and report["503_without_retry_after"] == 0
