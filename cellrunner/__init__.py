"""Run the independent cells of an experiment: serially, or on Dask when asked."""

from .runner import CellRunnerError, Cluster, run_cells

__all__ = ["CellRunnerError", "Cluster", "run_cells"]
