"""The --quick reproduction writes every output the issue asks for, resumes, and fails cleanly."""

import json
import re
import time

import pytest

from cim_backend.reproduce import main

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_quick_reproduction_writes_results_report_and_plots(tmp_path):
    out = tmp_path / "repro"
    start = time.perf_counter()
    assert main(["--quick", "--out", str(out)]) == 0
    first = time.perf_counter() - start
    results = json.loads((out / "results.json").read_text())
    assert set(results["networks"]) == {"lenet", "vgg"}
    lenet = results["networks"]["lenet"]["sigmas"]["0.1"]
    methods = lenet["methods"]
    expected = {"plain", "noise_injection", "tsb", "swv@1x", "swv@5x", "swv@all", "tsb_bias_only", "tsb_shared", "bias", "last_layer", "tsb_k4", "tsb_k8"}
    assert expected <= set(methods)
    for name, m in methods.items():
        lo, hi = m["ci"]
        assert 0.0 <= lo <= m["accuracy"] <= hi <= 1.0, name
        assert m["gap"] == pytest.approx(lenet["reference"]["accuracy"] - m["accuracy"])  # one common reference
    tsb = methods["tsb"]
    assert tsb["verified_weights"] == tsb["choices"][0]["width"] ** 2
    assert tsb["readback_reads_per_chip"] > methods["plain"]["weights"]  # every device read back, charged to TSB
    assert methods["swv@1x"]["verified_weights"] == tsb["verified_weights"]
    assert methods["swv@all"]["verified_fraction"] == 1.0 and methods["plain"]["verified_weights"] == 0
    assert set(lenet["vs_tsb"]) == set(methods) - {"tsb"}
    assert "drift" in tsb and set(tsb["drift"]) == {"86400"}
    assert set(tsb["fleet_seconds"]) == {"1", "100", "10000"}
    assert "gap_ratio_ni_over_tsb" in lenet and "status" in lenet["swv_crossing"]
    assert results["networks"]["vgg"]["sigmas"]["0.1"]["methods"]["tsb"]["accuracy"] > 0
    assert "rram" in results["settings"]["config"] and "adc_bits=6" in results["settings"]["config"]
    report = (out / "report.md").read_text()
    for heading in ("## lenet", "## vgg", "### After programming: drift", "### Fleet cost", "Gap ratio NI / TSB", "ADC path:"):
        assert heading in report
    assert not re.search(r"\bnan\b", report)
    for name in ("accuracy_vs_sigma.png", "accuracy_vs_budget.png", "accuracy_vs_time.png"):
        data = (out / name).read_bytes()
        assert data[:8] == PNG and len(data) > 5000
    # finished folds are kept: a rerun reuses them and writes the same figures
    start = time.perf_counter()
    assert main(["--quick", "--out", str(out)]) == 0
    assert time.perf_counter() - start < first
    again = json.loads((out / "results.json").read_text())
    assert again["networks"]["lenet"]["sigmas"]["0.1"]["methods"]["tsb"]["accuracy"] == tsb["accuracy"]


def test_bad_preset_is_a_clean_error(tmp_path, capsys):
    assert main(["--quick", "--out", str(tmp_path), "--preset", "nope"]) == 2
    assert "unknown preset" in capsys.readouterr().err


def test_bad_stuck_rate_is_a_clean_error(tmp_path, capsys):
    assert main(["--quick", "--out", str(tmp_path), "--stuck-rate", "0.7"]) == 2
    assert "stuck" in capsys.readouterr().err
