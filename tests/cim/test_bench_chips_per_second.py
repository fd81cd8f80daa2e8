"""The chips/s benchmark's --quick mode and the report's CIM section built from its JSON."""
from __future__ import annotations

import importlib.util
import json
import re
import sys

import pytest

from benchmarks.report import cim as cim_section
from tests.helpers import REPO_ROOT

SCRIPT = REPO_ROOT / "benchmarks/cim/bench_chips_per_second.py"


@pytest.fixture(scope="module")
def quick_results(bench_quick):
    """The --quick run made by `make bench-quick` (once per session): its results folder."""
    out_dir, _ = bench_quick
    return out_dir / "data"


def test_quick_json_times_both_tools_on_the_same_work(quick_results):
    data = json.loads((quick_results / cim_section.RESULT).read_text())
    assert data["quick"] is True and data["repeats"] == 1 and data["threads"] == 1
    assert data["machine"]["cores"] >= 1 and data["machine"]["cpu"]
    assert data["workload"]["test_images"] == 360
    head = data["cim_backend"]
    assert head["chips"] == 30 and head["chips_per_second"] == pytest.approx(30 / head["median_seconds"])
    assert 0 < head["median_cpu_seconds"] <= head["median_seconds"] * 1.5  # one torch thread
    assert head["mean_accuracy"] > 0.85  # LeNet (4 epochs in --quick) under sigma 0.1 programming noise
    assert data["cim_backend_read_noise"]["chips_per_second"] > 0
    sweep = data["sweep"]["cim_backend"]
    assert [r["chips"] for r in sweep] == [1, 10, 30]
    assert sweep[-1]["median_seconds"] > sweep[0]["median_seconds"] > 0
    aihwkit = data["aihwkit"]
    if aihwkit["available"]:
        assert aihwkit["chips"] == 10 and [r["chips"] for r in data["sweep"]["aihwkit"]] == [1, 3, 10]
        # Same network, same noise level: the mean accuracies agree within a few points.
        assert abs(aihwkit["mean_accuracy"] - head["mean_accuracy"]) < 0.05
        assert data["speedup_vs_aihwkit"] == pytest.approx(head["chips_per_second"] / aihwkit["chips_per_second"])
    else:
        assert aihwkit["reason"] and data["speedup_vs_aihwkit"] is None and "aihwkit" not in data["sweep"]


def test_render_has_numeric_chips_per_second_and_a_plot(quick_results, tmp_path):
    plots = tmp_path / "plots"
    md = cim_section.render(quick_results, plots)
    row = re.search(r"^\| cim_backend \(vectorised\) \| 30 \| ([0-9.]+) \| ([0-9.,]+) \|", md, re.M)
    assert row and float(row.group(2).replace(",", "")) > 0, md
    # the quick run has no CIM engine figures: the section says where they come from
    assert "CIM engine tokens/s: n/a: measured by the full run only (`python benchmarks/cim/bench_cim_engine.py`" in md
    assert re.search(r"\| cim_backend \| 1, 10, 30 \| [0-9.]+ \|", md), md
    assert (plots / "cim_scaling.png").stat().st_size > 1000
    assert "](plots/cim_scaling.png)" in md


def test_render_without_aihwkit_says_why_in_every_cell(quick_results, tmp_path):
    data = json.loads((quick_results / cim_section.RESULT).read_text())
    data["aihwkit"] = {"available": False, "reason": "aihwkit not importable"}
    data["speedup_vs_aihwkit"] = None
    data["sweep"].pop("aihwkit", None)
    (tmp_path / cim_section.RESULT).write_text(json.dumps(data))
    md = cim_section.render(tmp_path, tmp_path / "plots")
    assert "| aihwkit (one chip at a time) | n/a: aihwkit not importable |" in md
    assert "Ratio vs aihwkit: n/a: aihwkit not importable." in md
    assert "n/a: aihwkit not importable | n/a: aihwkit not importable" in md  # the scaling row


def test_render_missing_json_says_it_did_not_run(tmp_path):
    md = cim_section.render(tmp_path, tmp_path / "plots")
    assert md.startswith("n/a: the CIM benchmark did not run")
    assert not (tmp_path / "plots").exists()


def test_full_command_is_the_default_run_with_five_repeats_then_the_cim_engine(tmp_path):
    assert cim_section.commands(False, tmp_path) == [
        [cim_section.SCRIPT, "--repeats", "5", "--out", str(tmp_path / cim_section.RESULT)],
        [cim_section.ENGINE_SCRIPT, "--out", str(tmp_path / cim_section.ENGINE_RESULT)]]
    assert cim_section.commands(True, tmp_path) == [
        [cim_section.SCRIPT, "--quick", "--out", str(tmp_path / cim_section.RESULT)]]


def test_missing_aihwkit_is_recorded_not_raised(monkeypatch):
    spec = importlib.util.spec_from_file_location("bench_chips_per_second", SCRIPT)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    monkeypatch.setitem(sys.modules, "aihwkit", None)  # import aihwkit -> ImportError
    analog, facts = bench._aihwkit_or_reason(object())
    assert analog is None and facts["available"] is False and "not importable" in facts["reason"]
