"""`make bench` / `make bench-quick`: every benchmark, one report (benchmarks/RESULTS.md).

Each section is a module here with

    TITLE: str
    def commands(quick: bool, results: Path) -> list[list[str]]
        the benchmark runs (argv after ``python``, run from the repository root), each
        writing its JSON under ``results``;
    def render(results: Path, plots: Path) -> str
        the section's markdown (tables, goal verdicts) from that JSON; PNGs go to ``plots``
        and are linked relative to the report.
"""
