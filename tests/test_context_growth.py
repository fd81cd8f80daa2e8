"""A context that grows on demand (assistant/models/context_growth.py): an engine that starts
small and grows, before a long prompt and in the middle of a long answer, gives the same
seeded text as one that allocated the whole context at load (f16 and q8_0 caches, and
gemma3's sliding-window cache); the cached prefix survives a growth; the adapter stays on
across one; the pool starts engines at the configured size, by default with room for the profile's RAG
answer. Real catalog models, 1 thread
and a small batch to keep it short."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from assistant.models import engine as engine_module
from assistant.models.catalog import resolve_model
from assistant.models.context_growth import ANSWER_HEADROOM, GROWTH_STEP, next_size, rag_start_size, start_size
from assistant.models.engine import Engine
from assistant.models.generation import GenerationStats, SamplingParams, TextPiece
from assistant.models.pool import ModelPool
from assistant.profiles import load_profile
from assistant.settings import Settings
from tests.test_pool import random_adapter

N_CTX = 1024
NOTES = Path(__file__).resolve().parent.parent / "benchmarks" / "router" / "eval" / "notes"
# 150-250 tokens: fits the first 256 cells with a little room to answer.
SHORT = "Notes:\n" + "\n".join((NOTES / "car" / f).read_text() for f in ("fuel-log.md", "mot-result.txt"))[:600]
# 550-800 tokens sharing SHORT's start: needs a larger context before it is evaluated.
LONG = SHORT + "\n" + "\n".join(p.read_text() for p in sorted((NOTES / "family").glob("*")))[:1300] + "\nIn short,"


def test_start_size_rounds_up_and_zero_means_everything():
    assert start_size(8192, 2048) == 2048
    assert start_size(8192, 1000) == 4 * GROWTH_STEP
    assert start_size(1024, 2048) == 1024
    assert start_size(1000, 0) == 1000 and start_size(1000, None) == 1000


def test_next_size_at_least_doubles_and_stops_at_the_limit():
    assert next_size(256, 257, 8192) == 512
    assert next_size(512, 1500, 8192) == 1536
    assert next_size(2048, 2049, 3000) == 3000


def make_engine(name: str, kv_cache_type: str, home: Path, initial_context: int) -> Engine:
    return Engine(resolve_model(name, Settings(home=home)), n_ctx=N_CTX, n_threads=1, n_batch=32,
                  kv_cache_type=kv_cache_type, initial_context=initial_context)


def without_end_tokens(engine: Engine, **sampling) -> SamplingParams:
    """Seeded sampling that never ends the answer early (so it runs past a growth)."""
    ends = [t for t in range(engine._llm.n_vocab()) if engine._is_end(t)]
    return SamplingParams(seed=11, temperature=1.0, logit_bias=tuple((t, -100.0) for t in ends), **sampling)


def complete(engine: Engine, text: str, params: SamplingParams) -> tuple[str, GenerationStats]:
    events = list(engine.generate(engine.text_prompt(text, params)))
    return "".join(e.text for e in events if isinstance(e, TextPiece)), events[-1]


@pytest.mark.parametrize("name, kv_cache_type", [("default", "f16"), ("default", "q8_0"), ("gemma3-270m", "f16")])
def test_a_grown_context_gives_the_same_text_as_a_whole_one(name, kv_cache_type, tmp_path, monkeypatch):
    # A small headroom, so that a short answer outgrows the first context mid-generation.
    monkeypatch.setattr(engine_module, "ANSWER_HEADROOM", 8)
    grown = make_engine(name, kv_cache_type, tmp_path, initial_context=GROWTH_STEP)
    whole = make_engine(name, kv_cache_type, tmp_path, initial_context=0)
    assert (grown.allocated_context, whole.allocated_context) == (GROWTH_STEP, N_CTX)
    assert grown.n_ctx == whole.n_ctx == N_CTX

    n_prompt = len(grown.tokenize(SHORT))
    assert n_prompt + 8 <= GROWTH_STEP  # the prompt fits: the context grows while answering
    answer = without_end_tokens(grown, max_tokens=GROWTH_STEP - n_prompt + 32)
    text, stats = complete(grown, SHORT, answer)
    assert grown.context_growths == 1 and grown.allocated_context == 2 * GROWTH_STEP
    assert stats.completion_tokens == answer.max_tokens and text == complete(whole, SHORT, answer)[0]

    follow_up = without_end_tokens(grown, max_tokens=16)  # grows before the prompt; reuses SHORT's cells
    text, stats = complete(grown, LONG, follow_up)
    assert grown.context_growths == 2 and grown.allocated_context == N_CTX
    assert stats.prompt_cached_tokens >= 128
    assert text == complete(whole, LONG, follow_up)[0]
    assert grown.describe()["n_ctx_allocated"] == N_CTX and whole.context_growths == 0


def test_the_adapter_stays_on_across_a_growth(tmp_path):
    settings = Settings(home=tmp_path)
    adapter = settings.layout.adapters / f"{random_adapter(settings, 'grow-v1', seed=5, scale=0.3)}.gguf"
    grown = make_engine("default", "f16", tmp_path, initial_context=GROWTH_STEP)
    whole = make_engine("default", "f16", tmp_path, initial_context=0)
    for engine in (grown, whole):
        engine.load_adapter(adapter)
    tokens = grown.tokenize(LONG)[:GROWTH_STEP + 40]
    with_adapter = grown.logits(tokens, use_adapter=True)  # switches the adapter on, then grows
    assert grown.context_growths == 1
    np.testing.assert_allclose(with_adapter, whole.logits(tokens, use_adapter=True), rtol=1e-3, atol=1e-3)
    assert not np.allclose(with_adapter, whole.logits(tokens, use_adapter=False), atol=1e-2)


def test_a_profile_starts_with_room_for_its_rag_answer():
    for name in ("raspberry-pi-4-2gb", "raspberry-pi-4-4gb", "laptop-16gb"):
        profile = load_profile(name)
        size = rag_start_size(profile.rag_passages, profile.rag_passage_tokens, profile.max_context)
        passages = profile.rag_passages * profile.rag_passage_tokens
        assert passages + ANSWER_HEADROOM < size <= profile.max_context and size % GROWTH_STEP == 0
    assert rag_start_size(3, 160, 2048) == 1024 and rag_start_size(5, 240, 8192) == 1792
    assert rag_start_size(8, 500, 2048) == 2048  # never past the profile's context


@pytest.mark.parametrize("initial_context, expected", [(None, 1792), (0, 4096), (300, 512)])
def test_the_pool_starts_engines_at_the_configured_size(initial_context, expected, tmp_path):
    settings = Settings(home=tmp_path, n_ctx=4096, initial_context=initial_context)
    engine = ModelPool(settings, load_profile("laptop-16gb")).get()
    assert engine.describe()["n_ctx"] == 4096 and engine.allocated_context == expected
