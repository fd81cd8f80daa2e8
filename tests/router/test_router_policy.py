"""Difficulty levels, default strategies per device profile, calibration and overrides,
through the real orchestrator (default GGUF, real index, real adapter)."""
from __future__ import annotations

import time

import pytest

from assistant.errors import InvalidRequestError
from assistant.models.chat_format import ChatMessage
from assistant.models.generation import SamplingParams
from assistant.orchestrator import AskRequest
from assistant.router.calibration import CalibrationTable, Cell
from assistant.router.difficulty import Query, estimate_difficulty

GENERAL = "What is the capital of France?"
EASY = "Which folder is my dentist note filed under?"
MODERATE = "When is my next dentist appointment?"
HARD = "Summarize my notes on work and compare them with my home notes."


def ask(assistant, question, strategy="auto", model=None, history=()):
    """Plan and sources through ``Assistant.ask``, without generating (events not read)."""
    messages = [*history, ChatMessage("user", question)]
    with assistant.ask(AskRequest(messages=messages, strategy=strategy, model=model,
                                  sampling=SamplingParams(max_tokens=8, temperature=0.0, seed=0))) as answer:
        return answer


@pytest.mark.parametrize("question, level", [
    (GENERAL, "general"), ("Write a haiku about autumn.", "general"),
    (EASY, "easy"), ("Do I prefer tea or coffee?", "easy"),
    (MODERATE, "moderate"), ("Who is my manager?", "moderate"),
    (HARD, "hard"), ("When is my standup? And who runs it? And where?", "hard"),
])
def test_difficulty_from_wording(question, level):
    difficulty = estimate_difficulty(Query.of([ChatMessage("user", question)]))
    assert difficulty.level == level and difficulty.reasons


def test_difficulty_uses_conversation_and_retrieval(laptop):
    history = [ChatMessage("user", "Who is my landlord?"), ChatMessage("assistant", "Mr. Okafor.")]
    follow_up = estimate_difficulty(Query.of([*history, ChatMessage("user", "And the rent?")]))
    assert follow_up.level == "moderate" and "follow-up" in follow_up.reasons[0]
    # No first-person wording, yet the notes match it confidently: personal, not general.
    plan = ask(laptop, "Northwind Traders data engineer manager Carla").plan
    assert plan.difficulty != "general" and "retrieval best cosine" in plan.reasons[0]
    started = time.perf_counter()
    for _ in range(100):
        estimate_difficulty(Query.of([ChatMessage("user", HARD)]))
    assert (time.perf_counter() - started) / 100 < 0.005


def test_default_strategies_per_level(laptop):
    plans = {level: ask(laptop, q).plan for level, q in
             [("general", GENERAL), ("easy", EASY), ("moderate", MODERATE), ("hard", HARD)]}
    assert {level: p.difficulty for level, p in plans.items()} == {l: l for l in plans}
    assert plans["general"].strategy == "base" and plans["general"].k == 0
    assert plans["easy"].strategy == "rag" and plans["easy"].adapter is None  # retrieval measured best
    assert plans["moderate"].strategy == "rag" and plans["moderate"].adapter is None
    assert plans["hard"].strategy == "rag" and plans["hard"].k == 5
    assert all(p.source == "defaults" and p.reasons for p in plans.values())
    assert plans["moderate"].model == "smollm2-135m-instruct"
    assert "strongest chat model" in " ".join(plans["moderate"].reasons)
    assert "base models without chat template" in " ".join(plans["moderate"].reasons)


def test_same_question_differs_between_pi_and_laptop(pi, laptop):
    on_pi, on_laptop = ask(pi, HARD), ask(laptop, HARD)
    assert on_pi.plan.difficulty == on_laptop.plan.difficulty == "hard"
    assert on_pi.plan.strategy == on_laptop.plan.strategy == "rag"
    assert on_pi.plan.k == 2 < on_laptop.plan.k == 5  # few, short passages on the tight device
    assert on_pi.plan.passage_tokens < on_laptop.plan.passage_tokens
    assert len(on_pi.sources) <= 2 and len(on_laptop.sources) > 2
    assert on_pi.plan.as_dict()["max_context"] == 1024


def test_calibration_table_changes_the_decision(laptop, router_home):
    assert ask(laptop, EASY).plan.strategy == "rag"
    model = laptop.pool.default_name
    table = CalibrationTable(model=model, profile="laptop-16gb", cells=[
        Cell("easy", "adapter", model, 10, 0.9, 0.4, (0.8, 1.0)),
        Cell("easy", "rag+adapter", model, 10, 0.33, 0.9, (0.1, 0.6)),
        Cell("easy", "rag", model, 10, 0.3, 0.7, (0.1, 0.5)), Cell("easy", "base", model, 10, 0.0, 0.3, (0.0, 0.0)),
        Cell("moderate", "base", model, 2, 1.0, 0.1, (1.0, 1.0)),  # too few samples: ignored
        # the best hard cell, but its interval overlaps the default's: not enough to leave the defaults
        Cell("hard", "rag+adapter", model, 10, 0.6, 0.8, (0.3, 0.9)), Cell("hard", "rag", model, 10, 0.5, 1.0, (0.2, 0.8)),
    ])
    table.save(router_home)
    try:
        easy = ask(laptop, EASY).plan
        assert easy.strategy == "adapter" and easy.source == "calibration" and easy.adapter
        assert any("calibration: adapter" in r and "above the default rag" in r for r in easy.reasons)
        moderate = ask(laptop, MODERATE).plan
        assert moderate.strategy == "rag" and moderate.source == "defaults"
        hard = ask(laptop, HARD).plan
        assert hard.strategy == "rag" and hard.source == "defaults"
        assert any("does not beat the default" in r for r in hard.reasons)
        assert ask(laptop, EASY, strategy="adapter").plan.strategy == "adapter"  # override wins
    finally:
        CalibrationTable.path_for(router_home).unlink()
    assert ask(laptop, EASY).plan.source == "defaults"


def test_overrides_win_and_errors_stay(laptop, tmp_path):
    for strategy in ("base", "rag", "adapter", "rag+adapter"):
        plan = ask(laptop, GENERAL, strategy=strategy).plan
        assert plan.strategy == strategy and plan.source == "request" and plan.difficulty == "general"
    from assistant.orchestrator import Assistant
    from assistant.settings import Settings

    bare = Assistant.load(Settings(home=tmp_path / "bare", profile="laptop-16gb", n_ctx=512))
    with pytest.raises(InvalidRequestError) as no_index:
        ask(bare, MODERATE, strategy="rag")
    with pytest.raises(InvalidRequestError) as no_adapter:
        ask(bare, EASY, strategy="adapter")
    assert (no_index.value.code, no_adapter.value.code) == ("no_index", "no_adapter")
    assert ask(bare, HARD).plan.strategy == "base"  # auto without notes or adapter



def test_model_choice_switches_where_calibration_shows_a_stronger_model(laptop, router_home):
    from dataclasses import replace

    served = laptop.pool.default_name
    table = CalibrationTable(model=served, profile="laptop-16gb", cells=[
        Cell("moderate", "rag", served, 10, 0.25, 0.5, (0.1, 0.5)),
        Cell("moderate", "rag", "gemma3-270m", 10, 0.75, 0.9, (0.6, 0.9))])
    table.save(router_home)
    try:
        switched = ask(laptop, MODERATE)
        assert switched.plan.model == "gemma3-270m" and laptop.pool.loaded_engine("gemma3-270m") is not None
        assert any("model switch" in r for r in switched.plan.reasons) and switched.sources
        assert set(laptop.pool.loaded()) == {served, "gemma3-270m"}  # the laptop holds both
        explicit = ask(laptop, MODERATE, model=served).plan
        assert explicit.model == served and explicit.strategy == "rag"  # an explicit model wins
        laptop.profile = replace(laptop.profile, ram_budget_mb=600)  # gemma no longer fits
        laptop._model_options = None
        assert ask(laptop, MODERATE).plan.model == served
    finally:
        laptop.profile = replace(laptop.profile, ram_budget_mb=10000)
        laptop._model_options = None
        CalibrationTable.path_for(router_home).unlink()


def test_a_follow_up_retrieves_with_the_previous_turns_words(laptop):
    """"And where?" names nothing to search for alone: difficulty and search both read it
    with the turn before, so it retrieves what the two turns asked together."""
    history = [ChatMessage("user", "When is my next dentist check-up?"), ChatMessage("assistant", "March 14.")]
    answer = ask(laptop, "And where?", strategy="rag", history=history)
    together = ask(laptop, "When is my next dentist check-up? And where?", strategy="rag")
    assert answer.sources and answer.sources[0].path.endswith("dentist.md")
    assert answer.sources == together.sources
    assert ask(laptop, "And where?", strategy="rag").sources != answer.sources
