"""cellrunner runs an experiment's cells serially or on Dask workers, with the same results."""

import math
import os

import pytest

from cellrunner import CellRunnerError, Cluster, run_cells


def _square_and_pid(x: int) -> tuple[int, int]:
    return x * x, os.getpid()


def test_serial_runs_in_this_process_in_order_and_reports_each_cell():
    seen = []
    results = run_cells(_square_and_pid, [3, 1, 2], on_result=lambda cell, r: seen.append((cell, r[0])))
    assert [r[0] for r in results] == [9, 1, 4]
    assert {r[1] for r in results} == {os.getpid()}
    assert seen == [(3, 9), (1, 1), (2, 4)]


def test_local_workers_give_the_serial_results_in_cell_order():
    cells = list(range(7))
    seen = []
    results = run_cells(_square_and_pid, cells, Cluster(workers=2), on_result=lambda cell, r: seen.append(cell))
    assert [r[0] for r in results] == [c * c for c in cells]
    assert os.getpid() not in {r[1] for r in results}  # they ran in worker processes
    assert sorted(seen) == cells


def test_a_failing_cell_stops_the_run_with_its_exception():
    with pytest.raises(ValueError):
        run_cells(math.sqrt, [4.0, -1.0], Cluster(workers=1))
    with pytest.raises(ValueError):
        run_cells(math.sqrt, [4.0, -1.0])


@pytest.mark.parametrize("kwargs", [{"workers": -1}, {"workers": 2, "address": "tcp://127.0.0.1:1"}])
def test_impossible_clusters_are_refused(kwargs):
    with pytest.raises(CellRunnerError):
        Cluster(**kwargs)


def test_an_unreachable_scheduler_is_a_clean_error():
    with pytest.raises(CellRunnerError, match="cannot reach"):
        run_cells(_square_and_pid, [1], Cluster(address="tcp://127.0.0.1:9", connect_timeout_s=2))
