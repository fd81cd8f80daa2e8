"""`make bench-quick`: every benchmark's quick mode runs once, end to end, and the report has
every section, with a number (or an explicit "n/a: reason") in every figure cell and the
plots it links. The benchmarks' own JSON is checked from that one run."""
from __future__ import annotations

import json
import re

import pytest

from benchmarks.run_all import SECTIONS

NUMBER = re.compile(r"^-?[\d,]*\.?\d+(e[-+]?\d+)?$")
RANGE = re.compile(r"^[\d,.]+-[\d,.]+$")


def data_cells(markdown: str) -> list[tuple[str, str]]:
    """(row label, cell) for every data cell of every markdown table (header rows skipped)."""
    cells, previous = [], ""
    for line in markdown.splitlines():
        is_row = line.startswith("|")
        if is_row and not set(line) <= set("|-: ") and previous.startswith("|"):
            row = [c.strip().replace("**", "") for c in line.strip("|").split("|")]
            cells += [(row[0], c) for c in row[1:]]
        previous = line if is_row else ""
    return cells


@pytest.mark.slow
def test_quick_report_has_every_section_with_numbers(bench_quick):
    out, done = bench_quick
    assert done.returncode == 0, done.stderr[-3000:]
    report = (out / "RESULTS.md").read_text()
    headings = re.findall(r"^## (\d+)\. (.+)$", report, flags=re.M)
    assert [int(n) for n, _ in headings] == list(range(1, len(SECTIONS) + 1))
    assert "could not be rendered" not in report and "failed (exit" not in report
    cells = data_cells(report)
    assert len(cells) > 50
    for label, cell in cells:
        assert cell.lower() not in {"", "nan", "inf", "-inf", "none", "null", "n/a"}, (label, cell)
        if re.fullmatch(r"[-+\d.,eE%x]+", cell):  # looks like a figure: it must be one
            assert NUMBER.match(cell.rstrip("%x")) or RANGE.match(cell), (label, cell)
    assert not re.findall(r"n/a(?!:)", report), "every n/a says why"
    plots = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", report)
    assert len(plots) >= 6
    for link in plots:
        assert (out / link).stat().st_size > 1000, link


@pytest.mark.slow
def test_quick_serving_figures(bench_quick):
    out, _ = bench_quick
    report = json.loads((out / "data" / "serving.json").read_text())
    data = report["models"]["default"]
    # --quick: two chat rounds (the ratio's interval needs two), the RAG prompt in the first only
    assert report["config"]["rounds"] == 2 and report["config"]["rag_rounds"] == 1
    for workload, runs in (("chat", 2), ("rag", 1)):
        for mode, row in data["results"][workload].items():
            assert row["decode_tps_median"] > 0 and row["ttft_ms_median"] > 0, (workload, mode)
            assert row["runs"] == runs, (workload, mode)
    assert 600 <= data["results"]["rag"]["assistant serve"]["prompt_tokens"] <= 1200
    ratio = data["ratios"]["decode_vs_direct_generate"]
    assert ratio["ci95"][0] <= ratio["median"] <= ratio["ci95"][1] and len(ratio["per_round"]) == 2
    assert data["memory"]["assistant serve"]["peak_rss_mb"] > 50
    assert data["flash_attention"] is True  # SmolLM2's catalog choice, given to every mode and peer
    from benchmarks.report import generation

    assert "Flash attention on in every mode and peer" in generation.render(out / "data", out / "plots-again")


def test_render_only_keeps_when_and_how_the_figures_were_made(tmp_path):
    """A later --render-only says the commit, date and duration of the run that made the JSON,
    and names the commands relative to the repository (the report is read in other checkouts)."""
    from benchmarks.run_all import REPO, main

    data = tmp_path / "data"
    data.mkdir()
    command = f"python {REPO}/benchmarks/bench_serving.py --out {REPO}/benchmarks/data/serving.json"
    (data / "runs.json").write_text(json.dumps({
        "_made": {"commit": "abc1234", "date": "2026-01-02", "minutes": 47.1},
        "generation": [{"command": command, "seconds": 482.4, "returncode": 0, "stderr_tail": ""}]}))
    assert main(["--render-only", "--out", str(tmp_path)]) == 0
    report = (tmp_path / "RESULTS.md").read_text()
    assert "at commit `abc1234` on 2026-01-02, in 47.1 minutes" in report
    assert "`python benchmarks/bench_serving.py --out benchmarks/data/serving.json`: 482 s, ok" in report
    assert str(REPO) not in report


def test_a_section_run_again_keeps_the_whole_runs_header_and_names_its_commit(tmp_path):
    """--only into a report made by a whole run: the header still says that run's commit and
    minutes; the section run again says its own commit at its command."""
    from benchmarks.run_all import head_commit, main, render_section

    data = tmp_path / "data"
    data.mkdir()
    made = {"commit": "abc1234", "date": "2026-01-02", "minutes": 47.1}
    (data / "runs.json").write_text(json.dumps({"_made": made}))
    assert main(["--only", "long_runs", "--out", str(tmp_path)]) == 0  # a section with no commands
    assert json.loads((data / "runs.json").read_text())["_made"] == made
    assert "at commit `abc1234` on 2026-01-02, in 47.1 minutes" in (tmp_path / "RESULTS.md").read_text()
    run = {"command": "python benchmarks/bench_serving.py", "seconds": 482.4, "returncode": 0, "stderr_tail": "",
           "commit": head_commit(), "date": "2026-01-03"}
    again = render_section(1, "long_runs", data, tmp_path / "plots", [run], made_at="abc1234")
    assert f"482 s, ok (run again at commit `{head_commit()}` on 2026-01-03)" in again
    assert "run again" not in render_section(1, "long_runs", data, tmp_path / "plots", [run], made_at=head_commit())


def test_load_note_says_what_a_load_average_counts():
    from benchmarks.report.common import load_note

    note = load_note([2.2, 1.0, float("nan")], 2)
    assert note.startswith("1-minute load average 1.0-2.2 on 2 cores") and "own threads" in note
    assert load_note([float("nan")], 2).startswith("1-minute load average not recorded on 2 cores")


def test_the_header_names_the_whole_runs_machine_and_a_section_run_elsewhere_names_its_own(tmp_path):
    """The report may be rendered, or a section run again, on another machine than the whole
    run's: the header keeps the whole run's machine, and the section says where it ran."""
    from benchmarks.run_all import head_commit, main, render_section

    whole = {"cpu": "AMD EPYC", "cores": 2, "memory_gib": 23.5, "simd": ["avx2", "avx512f"], "python": "3.11.7"}
    data = tmp_path / "data"
    data.mkdir()
    (data / "runs.json").write_text(json.dumps({"_made": {"commit": "abc1234", "date": "2026-01-02",
                                                          "minutes": 47.1, "machine": whole}}))
    assert main(["--render-only", "--out", str(tmp_path)]) == 0
    assert "Machine: AMD EPYC, 2 cores (avx2, avx512f), 23.5 GiB, Python 3.11.7." in (tmp_path / "RESULTS.md").read_text()
    run = {"command": "python benchmarks/bench_serving.py", "seconds": 60.0, "returncode": 0, "stderr_tail": "",
           "commit": head_commit(), "date": "2026-01-03", "machine": {**whole, "simd": ["avx2"]}}
    elsewhere = render_section(1, "long_runs", data, tmp_path / "plots", [run], "abc1234", whole)
    assert "on 2026-01-03 on another machine: AMD EPYC, 2 cores (avx2), 23.5 GiB" in elsewhere
    same = render_section(1, "long_runs", data, tmp_path / "plots", [{**run, "machine": whole}], "abc1234", whole)
    assert f"(run again at commit `{head_commit()}` on 2026-01-03)" in same and "another machine" not in same
