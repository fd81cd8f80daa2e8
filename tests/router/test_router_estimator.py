"""The difficulty estimator: its rules on hand-made retrieval signals, its measurement on
the evaluation set's dev split (benchmarks/router/bench_estimator.py, through
``Assistant.route``), and ``assistant route``, which prints a plan without generating."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from assistant.commands import route
from assistant.models.chat_format import ChatMessage
from assistant.router.difficulty import (LEVELS, MATCH_ANY_WORDING, MATCH_COLLECTIVE, MATCH_FIRST_PERSON, Query,
                                         RetrievalSignal, estimate_difficulty)

ROOT = Path(__file__).resolve().parents[2]


def level(question: str, cosine: float | None = None) -> str:
    signal = None if cosine is None else RetrievalSignal(top_score=0.03, passages=5, distinct_notes=3,
                                                         top_similarity=cosine)
    return estimate_difficulty(Query.of([ChatMessage("user", question)]), signal).level


@pytest.mark.parametrize("question, threshold", [
    ("What is the capital of Germany?", MATCH_ANY_WORDING),
    ("Which company supplies our home broadband?", MATCH_COLLECTIVE),
    ("How much magnesium do I take at night?", MATCH_FIRST_PERSON),
])
def test_personal_needs_a_match_that_depends_on_the_wording(question, threshold):
    assert level(question, threshold + 0.01) != "general"
    assert level(question, threshold - 0.01) == "general"


def test_naming_the_notes_is_personal_whatever_the_match():
    assert level("Summarise my notes on the garden.", 0.05) == "hard"
    assert level("Which folder holds my notes on the boiler?", 0.05) == "easy"


@pytest.mark.parametrize("question, expected", [
    ("What did I title the note about the attic?", "easy"),
    ("Which folder is the EV charger note in?", "easy"),
    ("What category did I give my knitting note?", "easy"),
    ("What is the asset tag of my work laptop?", "moderate"),  # a tag on a laptop, not on a note
    ("How much is the water bill costing us now?", "hard"),  # changed over time: the newer note wins
    ("Where are we going for Easter this year?", "hard"),
    ("Who charges more per lesson, Anna or Ben?", "hard"),
    ("When is Tom's birthday, and what does he like to eat?", "hard"),
    ("Outline my morning routine.", "hard"),
    ("Which days am I working from home?", "hard"),  # a list
    ("Who is my landlord?", "moderate"),
    ("Do I prefer tea or coffee?", "easy"),
])
def test_levels_from_wording_when_the_notes_match(question, expected):
    assert level(question, 0.6) == expected


def test_without_an_index_wording_alone_decides():
    assert level("Who is my landlord?") == "moderate"
    assert level("Which planet is the largest?") == "general"


def test_reasons_say_why():
    difficulty = estimate_difficulty(Query.of([ChatMessage("user", "What is the capital of Germany?")]),
                                     RetrievalSignal(top_similarity=0.2, passages=5))
    assert difficulty.level == "general"
    assert "best cosine 0.20" in difficulty.reasons[0] and "weakly" in difficulty.reasons[1]


def _bench():
    spec = importlib.util.spec_from_file_location("bench_estimator", ROOT / "benchmarks/router/bench_estimator.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_estimator_benchmark_on_the_dev_split(tmp_path, capsys):
    out = tmp_path / "dev.json"
    assert _bench().main(["--split", "dev", "--home", str(tmp_path / "home"), "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    summary, records = result["splits"]["dev"], result["records"]
    assert summary["n"] == len(records) == 95
    assert sum(sum(row.values()) for row in summary["confusion"].values()) == 95
    right = sum(r["level"] == r["estimated"] for r in records)
    assert summary["accuracy"] == pytest.approx(right / 95)
    assert summary["accuracy_ci95"][0] <= summary["accuracy"] <= summary["accuracy_ci95"][1]
    general = [r for r in records if r["level"] == "general"]
    assert summary["general_to_notes"] == pytest.approx(sum(r["retrieves"] for r in general) / len(general))
    assert all(r["estimated"] in LEVELS and r["reasons"] for r in records)
    assert summary["estimate_ms_p95"] > 0
    # the thresholds were set on dev: a change that undoes that shows here (the test split is
    # scored by the benchmark, never asserted on in tests)
    assert summary["accuracy"] >= 0.85 and summary["general_to_notes"] <= 0.10
    assert "| general |" in capsys.readouterr().out


def test_estimator_benchmark_lists_errors_for_dev_only():
    with pytest.raises(SystemExit) as exited:
        _bench().main(["--split", "test", "--show-errors"])
    assert exited.value.code == 2


def test_route_prints_the_plan_without_generating(router_home, capsys):
    home = ["--home", str(router_home.home), "--n-ctx", "1024"]
    assert route.main(["Which folder is my dentist note filed under?", *home]) == 0
    text = capsys.readouterr().out
    assert "difficulty  easy" in text and "why:" in text and "health/dentist.md" in text
    assert route.main(["What is the capital of France?", "--json", *home]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["plan"]["difficulty"] == "general" and shown["plan"]["strategy"] == "base"
    assert shown["plan"]["reasons"] and shown["estimate_ms"] >= 0 and isinstance(shown["searched"], list)


def test_route_refuses_an_empty_question(capsys):
    with pytest.raises(SystemExit) as exited:
        route.main(["  "])
    assert exited.value.code == 2 and "empty" in capsys.readouterr().err


def test_comparison_benchmark_quick(tmp_path):
    """bench_eval --quick: every level, paired rows, the passage budget of auto given to rag,
    scores that the scorer gives again from the stored answers."""
    from assistant.study.scoring import score_answer

    spec = importlib.util.spec_from_file_location("bench_eval", ROOT / "benchmarks/router/bench_eval.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = tmp_path / "quick.json"
    assert module.main(["--quick", "--home", str(tmp_path / "home"), "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    questions = {q["id"]: q for q in module.questions("dev", None)}
    assert [r["level"] for r in result["records"]] == list(LEVELS)  # one question per level
    for record in result["records"]:
        results, question = record["results"], questions[record["id"]]
        assert set(results) == {"auto", "base", "rag", "rag@profile-k"}  # no adapter in --quick
        if results["auto"]["k"]:
            assert results["rag"]["k"] == results["auto"]["k"]  # same passage budget as auto
        assert results["rag@profile-k"]["k"] == 5  # laptop-16gb's budget
        for answer in results.values():
            assert answer["score"] == score_answer(answer["text"], question["answers"], question["key_facts"])
    table = result["table"]
    assert set(table) == {*LEVELS, "all"} and table["all"]["n"] == 4
    for level in LEVELS:
        assert table[level]["vs"]["rag"]["ci95"][0] <= table[level]["vs"]["rag"]["diff"] <= \
            table[level]["vs"]["rag"]["ci95"][1]
        assert 0 <= table[level]["vs"]["rag"]["p_holm"] <= 1
