"""The physical-limit benchmark: its bandwidth, byte counts and bound are what they claim."""
from __future__ import annotations

import json
import math

import pytest

from benchmarks import bench_bandwidth


def test_triad_computes_b_plus_s_c_blockwise():
    """Blocks that do not divide the array, and one thread per half, still cover every element."""
    import numpy as np

    size = bench_bandwidth.BLOCK_ELEMENTS * 2 + 123
    a, b, c = np.zeros(size), np.arange(size, dtype=float), np.ones(size)
    bench_bandwidth.timed_pass(a, b, c, threads=2)
    assert np.array_equal(a, b + 3.0 * c)


def test_weight_bytes_match_the_gguf_tensor_sizes(tmp_path):
    """Per-tensor byte counts agree with the gguf package's reader on the default model, and a
    tied head counts the embedding matrix once in full plus one row for the input lookup."""
    from gguf import GGUFReader

    from assistant.models.catalog import resolve_model
    from assistant.settings import Settings

    info = resolve_model("default", Settings(home=tmp_path)).info
    reader = GGUFReader(info.path)
    sizes = {tensor.name: int(tensor.n_bytes) for tensor in reader.tensors}
    assert {name: bench_bandwidth.tensor_bytes(info, name) for name in info.tensor_shapes} == sizes
    counted = bench_bandwidth.weight_bytes_per_token(info)
    assert counted["weight_bytes"] == sum(sizes.values())
    embedding = sizes["token_embd.weight"]
    row = embedding // info.tensor_shapes["token_embd.weight"][1]
    assert counted["tied_embeddings"] == ("output.weight" not in sizes)
    extra = row if counted["tied_embeddings"] else row - embedding
    assert counted["weight_bytes_per_token"] == sum(sizes.values()) + extra


@pytest.mark.slow
def test_bandwidth_benchmark_quick(bench_quick):
    out_dir, _ = bench_quick  # `make bench-quick` ran it, once per session
    report = json.loads((out_dir / "data" / "bandwidth.json").read_text())
    memory = report["bandwidth"]
    assert report["llc_bytes"] >= 1 << 20
    assert memory["array_mb"] * 1e6 >= report["llc_bytes"]  # past the cache even in quick mode
    assert 0.5 < memory["gbps_1_threads"] < 2000 and 0.5 < memory["gbps_2_threads"] < 2000
    assert memory["gbps_best"] == max(memory["gbps_1_threads"], memory["gbps_2_threads"])
    assert [row["model"] for row in report["models"]] == ["smollm2-135m-instruct", "gemma3-270m"]
    for row in report["models"]:
        assert row["weight_bytes_per_token"] > 50e6  # both read tens of MB of weights per token
        assert 0 < row["kv_bytes_per_token"] < row["weight_bytes_per_token"]
        assert row["bytes_per_token"] == pytest.approx(row["weight_bytes_per_token"] + row["kv_bytes_per_token"])
        assert row["bound_tps"] == pytest.approx(memory["gbps_best"] * 1e9 / row["bytes_per_token"])
        assert row["decode_tps"] > 1 and math.isfinite(row["fraction_of_bound"]) and row["fraction_of_bound"] > 0
        assert row["fraction_of_bound"] == pytest.approx(row["decode_tps"] / row["bound_tps"])
        assert row["goal_met"] == (row["fraction_of_bound"] >= 0.5)
        assert row["decode_tps_1_thread"] > 1
        assert row["fraction_of_bound_1_thread"] == pytest.approx(row["decode_tps_1_thread"] / row["bound_tps"])
        assert row["banned_tokens"] >= 1
