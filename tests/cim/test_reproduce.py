"""The --quick reproduction writes every output the issue asks for."""

import json

import pytest

from cim_backend.reproduce import main

KEYS = {
    "gap_plain", "gap_noise_injection", "gap_selective_wv", "gap_tsb", "verified_fraction_tsb",
    "train_seconds_noise_injection", "train_seconds_tsb", "chips",
}


@pytest.mark.slow
def test_quick_reproduction_writes_results(tmp_path):
    out = tmp_path / "repro"
    assert main(["--quick", "--out", str(out)]) == 0
    results = json.loads((out / "results.json").read_text())
    assert KEYS <= set(results)
    assert results["chips"] >= 2
    assert 0 < results["verified_fraction_tsb"] < 0.004  # the TSB budget: under 0.4% of weights
    for key in KEYS - {"chips"}:
        assert isinstance(results[key], float)
    methods = results["methods"]
    assert set(methods) == {"plain", "noise_injection", "selective_wv", "tsb"}
    assert methods["selective_wv"]["verified_weights"] == methods["tsb"]["verified_weights"]
    assert methods["plain"]["verified_weights"] == 0
    assert len(methods["tsb"]["chip_accuracies"]) == results["chips"]
    table = (out / "results.md").read_text()
    assert table.count("\n| (") == 4
    png = (out / "accuracy_vs_sigma.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000


def test_bad_preset_is_a_clean_error(tmp_path, capsys):
    assert main(["--quick", "--out", str(tmp_path), "--preset", "nope"]) == 2
    assert "unknown preset" in capsys.readouterr().err
