"""Calibration on the device, ``assistant bench study --quick`` and the router benchmark's
``--quick`` mode, on the package's real index and adapter."""
from __future__ import annotations

import csv
import importlib.util
import json
from pathlib import Path

from assistant.commands import bench, profile
from assistant.profiles import load_profile
from assistant.router.calibration import CalibrationTable
from assistant.study.calibrate import run_calibration
import pytest

pytestmark = pytest.mark.slow  # long: skipped by `make test-fast`, run by `make test`

ROOT = Path(__file__).resolve().parents[2]


def test_run_calibration_measures_every_strategy_and_profile_shows_it(laptop, router_home, capsys):
    table = run_calibration(router_home, load_profile("laptop-16gb"), probes_per_level=1, assistant=laptop)
    try:
        cells = {(c.difficulty, c.strategy) for c in table.cells}
        assert cells == {(level, strategy) for level in ("general", "easy", "moderate", "hard")
                         for strategy in ("base", "rag", "adapter", "rag+adapter")}
        assert all(c.n == 1 and 0.0 <= c.accuracy <= 1.0 and c.mean_latency_s > 0 for c in table.cells)
        assert all(c.ci95[0] <= c.accuracy <= c.ci95[1] for c in table.cells)
        stored = CalibrationTable.load(router_home)
        assert stored is not None and stored.model == "smollm2-135m-instruct" and stored.version == 2
        assert len(stored.cells) == 16 and stored.notes["adapter"]
        assert profile.main(["--home", str(router_home.home), "--profile", "laptop-16gb"]) == 0
        shown = capsys.readouterr().out
        assert "calibration  smollm2-135m-instruct on laptop-16gb" in shown and "rag+adapter" in shown
    finally:
        CalibrationTable.path_for(router_home).unlink(missing_ok=True)


def test_bench_study_quick_writes_csv_table_and_plots(router_home, capsys):
    active_before = (router_home.home / "adapters" / "active.json").read_text()
    assert bench.main(["study", "--quick", "--home", str(router_home.home), "--profile", "laptop-16gb"]) == 0
    reports = router_home.home / "reports"
    with (reports / "study.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert {r["method"] for r in rows} == {"base", "rag", "adapter", "rag+adapter"}
    assert {r["difficulty"] for r in rows} == {"easy", "moderate", "hard"}
    assert all(r["status"] == "ok" and int(r["n"]) > 0 for r in rows)
    assert any(float(r["train_s"]) > 0 for r in rows if r["method"] == "adapter")
    table = (reports / "study.md").read_text()
    assert "## Findings" in table and "| smollm2-135m-instruct | shipped |" in table
    for name in ("study_method_by_difficulty", "study_data_compression", "study_budget"):
        assert (reports / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "difficulty moderate: best method" in capsys.readouterr().out
    # The study's adapters stay out of the person's registry.
    assert (router_home.home / "adapters" / "active.json").read_text() == active_before
    assert not list((reports / "study-work").glob("*/adapters"))
    assert (reports / "study-work" / "smollm2-135m-instruct-shipped" / "knowledge" / "index.sqlite").is_file()


def test_study_cells_on_a_dask_worker_answer_as_serial_ones(router_home):
    """Without training (whose budget is wall-clock) a cell's answers are greedy, so a worker
    process must score exactly what this process scores."""
    from cellrunner import Cluster

    from assistant.study.study import StudyGrid, run_study

    grid = StudyGrid(methods=("base", "rag"), data_pcts=(100,), models=("smollm2-135m-instruct",),
                     compressions=("shipped",), budgets={}, probes_per_level=1)
    profile = load_profile("laptop-16gb")
    serial = run_study(router_home, profile, grid)
    ticks: list[str] = []
    parallel = run_study(router_home, profile, grid, ticks.append, Cluster(workers=1))

    def scores(rows):
        return [(r.model, r.method, r.data_pct, r.difficulty, r.n, r.accuracy, r.status) for r in rows]

    assert len(serial) == 6 and all(r.status == "ok" and r.n == 1 for r in serial)
    assert scores(parallel) == scores(serial)
    assert len(ticks) == 2  # one progress step per method of the cell, reported when it came back


def test_bench_study_refuses_workers_with_an_address(router_home, capsys):
    assert bench.main(["study", "--quick", "--home", str(router_home.home), "--workers", "2",
                       "--address", "tcp://127.0.0.1:1"]) == 1
    assert "not both" in capsys.readouterr().err


def test_bench_study_takes_the_methods_it_names(router_home, capsys):
    with pytest.raises(SystemExit):
        bench.main(["study", "--methods", "none", "--home", str(router_home.home)])
    assert "invalid choice: 'none'" in capsys.readouterr().err


def test_router_benchmark_quick(router_home, tmp_path):
    spec = importlib.util.spec_from_file_location("bench_router", ROOT / "benchmarks" / "router" / "bench_router.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    questions = tmp_path / "questions.jsonl"
    questions.write_text("\n".join(json.dumps(q) for q in [
        {"level": "general", "question": "What is the capital of France?", "expected": ["Paris"]},
        {"level": "easy", "question": 'Which of my notes has the section "Compost"?', "expected": ["garden"]},
        {"level": "moderate", "question": "What is the asset tag of my work laptop?", "expected": ["NW-10422"]},
        {"level": "hard", "question": "Summarize my notes on my job.", "keywords": ["northwind", "carla", "aurora"]},
    ]))
    out = tmp_path / "result.json"
    assert module.main(["--quick", "--home", str(router_home.home), "--questions", str(questions),
                        "--calibrate-probes", "0", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    for level in ("general", "easy", "moderate", "hard"):
        for strategy in ("base", "rag", "adapter", "rag+adapter", "auto"):
            assert result["cells"][f"{level}|{strategy}"]["n"] == 1
    assert result["auto_chose"]["general"] == {"base/general": 1}
    assert result["auto_chose"]["moderate"] == {"rag/moderate": 1}


def test_calibration_takes_levels_in_turn_and_keeps_to_its_budget(laptop, router_home):
    from assistant.study.calibrate import interleave_levels
    from assistant.study.probes import Probe

    probes = [Probe(level, f"{level} {i}", ("x",), "span") for level in ("general", "easy", "hard") for i in range(2)]
    assert [p.question for p in interleave_levels(probes)] == [
        "general 0", "easy 0", "hard 0", "general 1", "easy 1", "hard 1"]
    spent = run_calibration(router_home, load_profile("laptop-16gb"), probes_per_level=2, assistant=laptop,
                            save=False, budget_s=0.0)
    assert spent.cells == [] and spent.notes["stopped"] == "budget" and spent.notes["budget_s"] == 0.0
    assert CalibrationTable.load(router_home) is None  # save=False wrote nothing
