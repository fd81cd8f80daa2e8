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
    # the flat keys the issue names, per network and sigma, and the first reproduction's keys
    assert lenet["acc_mean"]["tsb"] == tsb["accuracy"] and lenet["acc_ci95"]["tsb"] == tsb["ci"]
    assert lenet["gap_common_reference"]["noise_injection"] == methods["noise_injection"]["gap"]
    match = lenet["verified_budget_to_match_tsb"]
    reaching = [m["verified_weights"] for n, m in methods.items() if n.startswith("swv@") and m["accuracy"] >= tsb["accuracy"]]
    assert match == (min(reaching) if reaching else None)
    for key in ("gap_plain", "gap_noise_injection", "gap_selective_wv", "gap_tsb", "verified_fraction_tsb", "chips",
                "gap_ratio_ni_over_tsb", "train_speedup_tsb", "methods", "sweep", "main_sigma"):
        assert key in results, key
    assert results["gap_tsb"] == tsb["gap"] and results["gap_selective_wv"] == methods["swv@1x"]["gap"]
    assert results["networks"]["vgg"]["sigmas"]["0.1"]["methods"]["tsb"]["accuracy"] > 0
    assert "rram" in results["settings"]["config"] and "adc_bits=6" in results["settings"]["config"]
    report = (out / "report.md").read_text()
    for heading in ("## lenet", "## vgg", "### After programming: drift", "### Fleet cost", "### Goals", "Gap ratio NI / TSB", "ADC path:"):
        assert heading in report
    goals = results["networks"]["lenet"]["goals"]
    assert any(g["goal"].startswith(">= 100 test chips") and g["met"] is False for g in goals)  # 3 quick chips
    assert any("faster than" in g["goal"] for g in goals) and "per-chip refit of the last layer" in report
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
    # the report can be rewritten from results.json alone, and says the same
    report = (out / "report.md").read_text()
    (out / "report.md").unlink()
    assert main(["--render-only", "--out", str(out)]) == 0
    assert (out / "report.md").read_text() == report
    # the same cells on two Dask worker processes give the same figures
    par = tmp_path / "parallel"
    assert main(["--quick", "--network", "lenet", "--workers", "2", "--out", str(par)]) == 0
    parallel = json.loads((par / "results.json").read_text())["networks"]["lenet"]["sigmas"]["0.1"]
    for name, m in methods.items():
        assert parallel["methods"][name]["accuracy"] == m["accuracy"], name
        assert parallel["methods"][name]["ci"] == m["ci"], name
    assert json.loads((par / "results.json").read_text())["meta"]["ran"] == "2 local Dask worker process(es)"


def test_render_only_without_results_is_a_clean_error(tmp_path, capsys):
    assert main(["--render-only", "--out", str(tmp_path)]) == 2
    assert "results.json" in capsys.readouterr().err


def test_bad_preset_is_a_clean_error(tmp_path, capsys):
    assert main(["--quick", "--out", str(tmp_path), "--preset", "nope"]) == 2
    assert "unknown preset" in capsys.readouterr().err


def test_bad_stuck_rate_is_a_clean_error(tmp_path, capsys):
    assert main(["--quick", "--out", str(tmp_path), "--stuck-rate", "0.7"]) == 2
    assert "stuck" in capsys.readouterr().err
