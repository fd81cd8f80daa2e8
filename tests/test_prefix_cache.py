"""Prompt-prefix reuse (assistant/models/prefix_cache.py) on the real catalog models: a seeded
request gives the same text cold, after another prompt sharing a long prefix, and after an
adapter round trip; a shared prefix is not evaluated again; the prefix of the weights
switched away from comes back. A small batch (32) keeps the prompts short."""
from __future__ import annotations

from pathlib import Path

import pytest

from assistant.models.catalog import resolve_model
from assistant.models.chat_format import ChatMessage
from assistant.models.engine import Engine
from assistant.models.generation import GenerationStats, SamplingParams, TextPiece
from assistant.models.prefix_cache import MIN_HEAD_TOKENS, PrefixCache, common_prefix, template_head
from assistant.settings import Settings

N_BATCH = 32
NOTES = Path(__file__).resolve().parent.parent / "benchmarks" / "router" / "eval" / "notes"
PREAMBLE = ("Answer from these notes.\n\n" + (NOTES / "car" / "fuel-log.md").read_text()[:360]
            + "\n\n" + (NOTES / "car" / "parking-permit.md").read_text()[:200])
SEEDED = {"max_tokens": 12, "seed": 7, "temperature": 1.0}


@pytest.fixture(scope="module")
def settings(tmp_path_factory):
    return Settings(home=tmp_path_factory.mktemp("prefix-home"))


def make_engine(settings: Settings, prefix_reuse: bool = True) -> Engine:
    # 1 thread: on a CPU shared with other jobs, llama.cpp's threads spin at their barriers
    return Engine(resolve_model("default", settings), n_ctx=1024, n_threads=1, n_batch=N_BATCH,
                  prefix_reuse=prefix_reuse)


@pytest.fixture(scope="module")
def engine(settings):
    return make_engine(settings)


@pytest.fixture(scope="module")
def cold_engine(settings):
    """Evaluates every prompt from an empty cache: the reference for 'the same text'."""
    return make_engine(settings, prefix_reuse=False)


def ask(engine: Engine, question: str, use_adapter: bool = False) -> tuple[str, GenerationStats]:
    messages = [ChatMessage("system", PREAMBLE), ChatMessage("user", question)]
    events = list(engine.generate(engine.chat_prompt(messages, SamplingParams(**SEEDED), use_adapter)))
    return "".join(e.text for e in events if isinstance(e, TextPiece)), events[-1]


def test_seeded_request_gives_the_same_text_cold_and_after_a_shared_prefix(engine, cold_engine):
    reference, cold = ask(cold_engine, "When was the car last refuelled?")
    ask(engine, "How much does the parking permit cost?")  # caches the shared preamble
    text, warm = ask(engine, "When was the car last refuelled?")
    assert cold.prompt_cached_tokens == 0 and warm.prompt_cached_tokens > 2 * N_BATCH
    assert text == reference


@pytest.mark.parametrize("name, kv_cache_type", [("gemma3-270m", "f16"), ("default", "q8_0")])
def test_reuse_and_a_kept_prefix_give_the_same_text_on_other_caches(settings, name, kv_cache_type):
    """gemma3's sliding-window cache (iSWA) and the q8_0 cache with flash attention: the reuse
    point and a snapshot taken and restored (as an adapter round trip does) change nothing."""
    engines = [Engine(resolve_model(name, settings), n_ctx=1024, n_threads=1, n_batch=N_BATCH,
                      kv_cache_type=kv_cache_type, prefix_reuse=reuse) for reuse in (False, True)]
    cold, warm = engines
    reference, _ = ask(cold, "When was the car last refuelled?")
    ask(warm, "How much does the parking permit cost?")
    warm.prefixes.switch(None, "elsewhere")  # keep the prefix aside, as for other weights
    assert warm.prefixes.canonical == 0 and warm.prefixes.kept()[None] > 2 * N_BATCH
    warm.prefixes.switch("elsewhere", None)
    text, stats = ask(warm, "When was the car last refuelled?")
    assert stats.prompt_cached_tokens > 2 * N_BATCH and text == reference


def test_shared_prefix_is_not_evaluated_again(engine):
    questions = ("Which fuel station is the cheapest?", "Where may the car be parked?")
    prompts = [engine.chat_prompt([ChatMessage("system", PREAMBLE), ChatMessage("user", q)], SamplingParams()).tokens
               for q in questions]
    shared = common_prefix(*prompts)
    assert shared > 2 * N_BATCH
    ask(engine, questions[0])
    _, second = ask(engine, questions[1])
    # everything shared, down to a batch boundary, comes from the cache
    assert second.prompt_cached_tokens == shared // N_BATCH * N_BATCH


def test_reuse_point_is_batch_aligned_and_leaves_a_token_to_evaluate(settings):
    from assistant.models.llama_loader import load_llama

    llm = load_llama(True, model_path=str(resolve_model("default", settings).path), n_ctx=256, n_threads=1,
                     n_batch=N_BATCH, n_ubatch=N_BATCH, verbose=False)
    cache = PrefixCache(llm)
    tokens = llm.tokenize(PREAMBLE.encode(), add_bos=True)[:100]
    assert cache.prepare(tokens) == 0
    llm.eval(tokens)
    cache.evaluated(len(tokens))
    assert cache.canonical == 96  # the last partial batch is not canonical
    assert cache.prepare(tokens[:70] + [tokens[0]] * 30) == 64
    llm.eval(tokens[64:])
    cache.evaluated(len(tokens))
    assert cache.prepare(tokens[:64]) == 32  # the same 64 tokens: the last one is evaluated again
    cache.invalidate()
    assert cache.prepare(tokens) == 0


def ask_plainly(engine: Engine, question: str) -> tuple[str, GenerationStats]:
    """A conversation with no system message: SmolLM2's template opens it with its own."""
    events = list(engine.generate(engine.chat_prompt([ChatMessage("user", question)], SamplingParams(**SEEDED))))
    return "".join(e.text for e in events if isinstance(e, TextPiece)), events[-1]


def test_template_head_is_a_chunk_of_its_own_and_comes_from_the_cache(engine, cold_engine, settings):
    head = engine.prefixes.head
    assert len(head) >= MIN_HEAD_TOKENS and len(head) < N_BATCH
    assert engine.tokenize(engine.render_chat([ChatMessage("user", "Hi")]))[:len(head)] == head
    reference, cold = ask_plainly(cold_engine, "What does the parking permit cost?")
    ask_plainly(engine, "Where is the fuel log kept?")
    text, warm = ask_plainly(engine, "What does the parking permit cost?")
    # shorter than one batch, yet shared: the head, and not one token more
    assert cold.prompt_cached_tokens == 0 and warm.prompt_cached_tokens == len(head)
    assert text == reference
    # a system message of the caller's own replaces the head: nothing of it is reused
    _, other = ask(engine, "When was the car last refuelled?")
    assert other.prompt_cached_tokens == 0
    gemma = Engine(resolve_model("gemma3-270m", settings), n_ctx=256, n_threads=1, n_batch=N_BATCH)
    assert gemma.prefixes.head == []  # "User: " is too short to be worth a chunk of its own


def test_template_head_is_the_shared_opening_less_one_token():
    opening = list(range(100, 100 + MIN_HEAD_TOKENS + 4))
    assert template_head([opening + [1, 2], opening + [3], opening + [4, 5]]) == opening[:-1]
    assert template_head([opening[:MIN_HEAD_TOKENS] + [1], opening[:MIN_HEAD_TOKENS] + [2]]) == []


def test_chunks_count_from_the_end_of_the_head(settings):
    from assistant.models.llama_loader import load_llama

    llm = load_llama(True, model_path=str(resolve_model("default", settings).path), n_ctx=256, n_threads=1,
                     n_batch=N_BATCH, n_ubatch=N_BATCH, verbose=False)
    tokens = llm.tokenize(PREAMBLE.encode(), add_bos=True)[:100]
    cache = PrefixCache(llm, head=tokens[:20])
    assert cache.prepare(tokens) == 0 and llm.n_tokens == 20  # the head, evaluated on its own
    llm.eval(tokens[20:])
    cache.evaluated(len(tokens))
    assert cache.canonical == 84  # 20 + 2 x 32
    assert cache.prepare(tokens[:70] + [tokens[0]] * 30) == 52
    cache.evaluated(len(tokens))  # (not evaluated: only the bookkeeping is under test here)
    assert cache.prepare([tokens[0]] + tokens[1:60]) == 52
    assert cache.prepare([tokens[1]] + tokens[1:60]) == 0 and llm.n_tokens == 0  # no head: counted from 0


def test_adapter_round_trip_restores_the_prefix_and_the_text(settings, engine, cold_engine):
    from tests.test_pool import random_adapter

    # strong enough to change the text: a prefix computed with the wrong weights would show
    path = settings.layout.adapters / f"{random_adapter(settings, 'prefix-v1', seed=3, scale=0.3)}.gguf"
    engine.load_adapter(path)
    cold_engine.load_adapter(path)
    try:
        question, other = "What is the permit number?", "When does the permit expire?"
        with_adapter, _ = ask(cold_engine, question, use_adapter=True)
        without, _ = ask(cold_engine, question)
        assert with_adapter != without
        ask(engine, other, use_adapter=True)  # on: caches the preamble under the adapter's weights
        ask(engine, other)  # off: under the base model's
        text, back = ask(engine, question, use_adapter=True)  # on again: the adapter's prefix comes back
        assert back.prompt_cached_tokens > 2 * N_BATCH and text == with_adapter
        text, base = ask(engine, question)  # and the base model's
        assert base.prompt_cached_tokens > 2 * N_BATCH and text == without
        assert 0 < engine.prefixes.kept_bytes < 1024 * 23_100  # one snapshot of <= 1,024 tokens, 22.5 KiB each
    finally:
        engine.unload_adapter()
        cold_engine.unload_adapter()
    assert engine.prefixes.kept() == {}  # the adapter's prefix went with it
