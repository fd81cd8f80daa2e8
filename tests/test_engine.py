"""The engine and its one generation API, on the real default model."""
from __future__ import annotations

import threading

import pytest

from assistant.errors import ContextLengthExceededError
from assistant.models.catalog import resolve_model
from assistant.models.chat_format import ChatMessage, PlainChatFormat
from assistant.models.engine import Engine
from assistant.models.generation import GenerationStats, SamplingParams, TextPiece
from assistant.models.stop_matcher import StopMatcher
from assistant.settings import Settings


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    settings = Settings(home=tmp_path_factory.mktemp("engine-home"))
    return Engine(resolve_model("default", settings), n_ctx=512, n_threads=2)


def run(engine, prompt, **params):
    events = list(engine.generate(engine.chat_prompt([ChatMessage("user", prompt)], SamplingParams(**params))))
    text = "".join(e.text for e in events if isinstance(e, TextPiece))
    stats = events[-1]
    assert isinstance(stats, GenerationStats)
    assert all(isinstance(e, TextPiece) for e in events[:-1])
    return text, stats


def test_typed_records_with_counts_and_timings(engine):
    text, stats = run(engine, "Write one sentence about cats.", max_tokens=12, seed=1)
    assert text
    assert 0 < stats.completion_tokens <= 12
    assert stats.prompt_tokens > 5
    assert stats.finish_reason in ("stop", "length")
    assert 0 < stats.time_to_first_token_s <= stats.total_s


def test_max_tokens_gives_length(engine):
    _, stats = run(engine, "Write a long essay about the history of bread.", max_tokens=3, seed=2)
    assert stats.completion_tokens == 3 and stats.finish_reason == "length"


def test_seed_makes_sampling_repeatable(engine):
    first = run(engine, "Invent a name for a boat.", max_tokens=10, seed=42, temperature=1.0)[0]
    again = run(engine, "Invent a name for a boat.", max_tokens=10, seed=42, temperature=1.0)[0]
    assert first == again


def test_stop_string_cuts_output(engine):
    text, free = run(engine, "List the numbers from 1 to 10, separated by commas.", max_tokens=40, seed=3,
                     temperature=0.0)
    assert "," in text
    stopped, stats = run(engine, "List the numbers from 1 to 10, separated by commas.", max_tokens=40, seed=3,
                         temperature=0.0, stop=(",",))
    assert "," not in stopped and stats.finish_reason == "stop"
    assert text.startswith(stopped)


def test_prompt_longer_than_context_is_refused(engine):
    with pytest.raises(ContextLengthExceededError) as info:
        engine.chat_prompt([ChatMessage("user", "word " * 600)], SamplingParams())
    assert info.value.code == "context_length_exceeded"


def test_max_tokens_is_clamped_to_the_room_left(engine):
    prompt = engine.chat_prompt([ChatMessage("user", "hi")], SamplingParams(max_tokens=10_000))
    assert prompt.params.max_tokens == engine.n_ctx - len(prompt.tokens)


def test_cancel_stops_generation(engine):
    cancel = threading.Event()
    pieces = 0
    prompt = engine.chat_prompt([ChatMessage("user", "Tell me a very long story.")],
                                SamplingParams(max_tokens=200, seed=5, temperature=1.0))
    for event in engine.generate(prompt, cancel):
        if isinstance(event, TextPiece):
            pieces += 1
            if pieces == 2:
                cancel.set()
        else:
            stats = event
    assert stats.finish_reason == "cancelled"
    assert stats.completion_tokens <= 3


def test_plain_chat_format_for_models_without_template():
    fmt = PlainChatFormat()
    prompt = fmt.render([ChatMessage("system", "Be brief."), ChatMessage("user", "Hi"),
                         ChatMessage("assistant", "Hello."), ChatMessage("user", "Name a color.")])
    assert prompt.endswith("User: Name a color.\nAssistant:")
    assert prompt.startswith("Be brief.")
    assert "\nUser:" in fmt.stop


def test_gemma_base_model_generates_with_the_fallback(tmp_path):
    gemma = Engine(resolve_model("gemma3-270m", Settings(home=tmp_path)), n_ctx=256, n_threads=2)
    assert gemma.chat_format.name == "plain"
    text, stats = run(gemma, "What is the capital of France?", max_tokens=8, seed=1, temperature=0.0)
    assert stats.completion_tokens > 0 and text.strip()
    assert "User:" not in text
    assert not gemma.flash_attention and not _flash_attention_in_llama_cpp(gemma)  # not measured faster


def _flash_attention_in_llama_cpp(engine) -> bool:
    import llama_cpp

    return engine._llm.context_params.flash_attn_type == llama_cpp.LLAMA_FLASH_ATTN_TYPE_ENABLED


def test_flash_attention_is_the_catalogs_choice_with_f16_and_always_on_with_q8_0(engine, tmp_path):
    assert engine.kv_cache_type == "f16" and engine.flash_attention and _flash_attention_in_llama_cpp(engine)
    assert engine.describe()["flash_attention"] is True
    gemma_q8 = Engine(resolve_model("gemma3-270m", Settings(home=tmp_path)), n_ctx=256, n_threads=2,
                      kv_cache_type="q8_0")
    assert gemma_q8.flash_attention and _flash_attention_in_llama_cpp(gemma_q8)  # a q8_0 V cache needs it


@pytest.mark.parametrize("pieces, stops, expected, stopped", [
    (["Hello wor", "ld!"], ["world"], "Hello ", True),
    (["a", "b", "c"], ["xyz"], "abc", False),
    (["ans", "wer\nUs", "er: more"], ["\nUser:"], "answer", True),
    (["x\nU", "nicode"], ["\nUser:"], "x\nUnicode", False),
])
def test_stop_matcher(pieces, stops, expected, stopped):
    matcher = StopMatcher(stops)
    out, hit = "", False
    for piece in pieces:
        text, hit = matcher.feed(piece)
        out += text
        if hit:
            break
    if not hit:
        out += matcher.flush()
    assert out == expected and hit == stopped
