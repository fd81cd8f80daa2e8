"""A llama.cpp context that grows on demand, up to the profile's context length.

llama.cpp allocates the KV cache for the whole context when the context is created, and
clears it, so all of it is resident from the start: on ``laptop-16gb`` 8,192 tokens of q8_0
cache is about 100 MB that an ordinary question (a RAG prompt of ~1,000 tokens and its
answer) never touches. The engine starts with a smaller context and, when a prompt or an
answer needs more room, replaces it by a larger one, carrying sequence 0's KV cells across
(llama.cpp's sequence state, the same copy an adapter switch uses for its prefixes): nothing
is evaluated again, and the cells are the same bytes, so a seeded answer is the same text.
A grown context stays grown (no shrinking: a person who pasted a long document once is
likely to do it again, and growing costs a copy of the cache each time).

This is the one place that swaps llama-cpp-python's context (``_ctx``, ``context_params``,
``_n_ctx``, ``input_ids``); pinned to 0.3.x and tested in tests/test_context_growth.py.
"""
from __future__ import annotations

import contextlib
import ctypes

import numpy as np

from assistant.models.prefix_cache import copy_cells, put_cells

GROWTH_STEP = 256  # sizes are multiples of this (llama.cpp pads its KV cache to 256 cells)
# The context a model starts with when nothing says otherwise (a laptop's RAG prompt of 5
# passages and its answer); the pool starts at ``rag_start_size`` for the profile.
INITIAL_CONTEXT = 2048
# Answer tokens the context is grown for before generating (more are grown for as they come).
ANSWER_HEADROOM = 256
# A RAG prompt besides its passages' text: chat template, instruction, question (~190), and
# each passage's label (marker, note name, heading).
RAG_PROMPT_OVERHEAD = 192
PASSAGE_LABEL_TOKENS = 24


def start_size(limit: int, initial: int | None) -> int:
    """The context to allocate at load: ``initial`` (0 or None: the whole ``limit``), rounded
    up to GROWTH_STEP, never more than ``limit``."""
    if not initial:
        return limit
    return min(limit, -(-initial // GROWTH_STEP) * GROWTH_STEP)


def rag_start_size(passages: int, passage_tokens: int, limit: int) -> int:
    """Room for a RAG answer at a profile's passage budget: its passages and their labels,
    the rest of the prompt and ANSWER_HEADROOM answer tokens (a longer chat grows it)."""
    return start_size(limit, passages * (passage_tokens + PASSAGE_LABEL_TOKENS) + RAG_PROMPT_OVERHEAD + ANSWER_HEADROOM)


def next_size(current: int, needed: int, limit: int) -> int:
    """The size to grow to for ``needed`` cells: at least double (so a long answer grows a
    few times, not every token), rounded up to GROWTH_STEP, at most ``limit``."""
    wanted = max(needed, 2 * current)
    return min(limit, -(-wanted // GROWTH_STEP) * GROWTH_STEP)


def _sequence_state(llm) -> tuple[ctypes.Array, int] | None:
    """A copy of sequence 0's first ``llm.n_tokens`` cells; None when there are none."""
    n = int(llm.n_tokens)
    state = copy_cells(llm, n) if n else None
    return None if state is None else (state, n)


def resize_context(llm, n_ctx: int) -> int:
    """Replace ``llm``'s context by one of ``n_ctx`` tokens, carrying the evaluated tokens'
    KV cells and ``input_ids``; returns how many tokens were carried (0 if the copy failed,
    and the next prompt then runs cold). The old context is freed before the new one is
    made, so memory peaks at the larger context plus one copy of the used cells.
    ValueError if llama.cpp cannot create the context (the old size is restored first)."""
    carried = _sequence_state(llm)
    old_size = llm.context_params.n_ctx
    llm._ctx.close()
    try:
        _new_context(llm, n_ctx)
    except ValueError:
        _new_context(llm, old_size)
        _restore(llm, carried)
        raise
    return _restore(llm, carried)


def _new_context(llm, n_ctx: int) -> None:
    from llama_cpp import _internals

    llm.context_params.n_ctx = n_ctx
    context = _internals.LlamaContext(model=llm._model, params=llm.context_params, verbose=False)
    # Freed with the Llama's other resources, before its model (the stack is LIFO).
    llm._ctx = llm._stack.enter_context(contextlib.closing(context))
    llm._n_ctx = llm.n_ctx()
    input_ids = np.zeros((n_ctx,), dtype=np.intc)
    keep = min(len(llm.input_ids), n_ctx)
    input_ids[:keep] = llm.input_ids[:keep]
    llm.input_ids = input_ids


def _restore(llm, carried: tuple[ctypes.Array, int] | None) -> int:
    """Put the carried cells into the (new, never smaller) context; 0 and an empty cache if
    there were none or llama.cpp refuses them."""
    llm._requires_eval = True  # the logits in llama.cpp are not these tokens'
    state, n = carried if carried is not None else (None, 0)
    if state is None or not put_cells(llm, state):
        llm.n_tokens = 0
        return 0
    llm.n_tokens = n
    return n
