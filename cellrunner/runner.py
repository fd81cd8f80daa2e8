"""One way to run an experiment's independent cells, shared by the TSB reproduction
(``python -m cim_backend.reproduce``) and the trade-off study (``assistant bench study``).

Serial by default, in this process. Asked for workers (``Cluster(workers=N)``) or a cluster
(``Cluster(address="tcp://host:8786")``), the cells go to Dask's distributed scheduler (the
optional ``cluster`` extra) rather than to a scheduler of our own: it already handles worker
processes, failures and remote machines. Results come back in the cells' order whichever way
they ran, and a cell's result depends only on the cell, so the same cells give the same
results serially or in parallel when the work itself is deterministic.

This package imports neither ``assistant`` nor ``cim_backend``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

C = TypeVar("C")
R = TypeVar("R")

INSTALL_HINT = "pip install 'assistant[cluster]' (Dask's distributed scheduler)"


class CellRunnerError(Exception):
    """The cells cannot be run as asked (Dask missing, a cluster unreachable)."""


@dataclass(frozen=True)
class Cluster:
    """Where cells run: ``workers`` = 0 and no ``address`` is serially in this process;
    ``workers`` = N starts N single-threaded worker processes on this machine (listening on
    127.0.0.1 only, no dashboard); ``address`` joins a running Dask scheduler."""

    workers: int = 0
    address: str | None = None
    connect_timeout_s: float = 20.0  # how long to keep trying to reach ``address``

    def __post_init__(self) -> None:
        if self.workers < 0:
            raise CellRunnerError(f"workers must be >= 0, not {self.workers}")
        if self.workers and self.address:
            raise CellRunnerError("give either workers (a local cluster) or an address (a running one), not both")

    @property
    def serial(self) -> bool:
        """True when the cells run one after another in this process."""
        return not self.workers and not self.address

    def describe(self) -> str:
        """A short human description for logs and reports."""
        if self.address:
            return f"Dask cluster at {self.address}"
        if self.workers:
            return f"{self.workers} local Dask worker process(es)"
        return "serially in this process"


def run_cells(
    work: Callable[[C], R],
    cells: Sequence[C],
    cluster: Cluster = Cluster(),
    on_result: Callable[[C, R], None] | None = None,
) -> list[R]:
    """``[work(cell) for cell in cells]``, run as ``cluster`` says. ``on_result(cell, result)``
    is called in this process as each cell finishes (in completion order), e.g. to store it or
    to advance a progress bar; the list returned is in the cells' order. With a cluster,
    ``work`` and the cells must pickle (a module-level function or a ``functools.partial`` of
    one). A cell that raises stops the run with its exception."""
    cells = list(cells)
    if cluster.serial:
        results = []
        for cell in cells:
            result = work(cell)
            if on_result:
                on_result(cell, result)
            results.append(result)
        return results
    return _run_on_dask(work, cells, cluster, on_result)


def _run_on_dask(work, cells: list, cluster: Cluster, on_result) -> list:
    try:
        from dask.distributed import Client, LocalCluster, as_completed
    except ImportError as exc:
        raise CellRunnerError(f"running cells on workers needs Dask: {INSTALL_HINT}") from exc
    local = None
    try:
        if cluster.address:
            client = Client(cluster.address, timeout=f"{cluster.connect_timeout_s}s")
        else:
            # Private by default: the scheduler listens on loopback and no dashboard is served.
            local = LocalCluster(n_workers=cluster.workers, threads_per_worker=1, processes=True,
                                 host="127.0.0.1", dashboard_address=None)
            client = Client(local)
    except (OSError, TimeoutError) as exc:
        if local is not None:
            local.close()
        raise CellRunnerError(f"cannot reach a Dask scheduler ({cluster.describe()}): {exc}") from exc
    try:
        futures = client.map(work, cells, pure=False)
        position = {future.key: i for i, future in enumerate(futures)}
        results: list = [None] * len(cells)
        for future in as_completed(futures):
            i = position[future.key]
            results[i] = future.result()
            if on_result:
                on_result(cells[i], results[i])
        return results
    finally:
        client.close()
        if local is not None:
            local.close()
