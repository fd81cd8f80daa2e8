"""Reusing the KV cache's prompt prefix across requests, deterministic by construction.

llama-cpp-python's ``Llama.eval`` cuts the tokens it is given into ``n_batch`` chunks counted
from where the evaluation starts. If every prompt evaluation starts at a multiple of the
batch size B (the engine sets ``n_ubatch = n_batch``), every prompt token's KV entries and
logits come out of the same chunk of B tokens whether the prompt runs cold or after a cached
prefix, so a seeded request gives the same text either way, whatever the CPU's kernels do
with other matmul shapes (repacked AVX-512 or ARM kernels may round differently per shape).
The price: fewer than B prompt tokens evaluated again.

One exception to counting from 0: the chat template's fixed head (for SmolLM2 its default
system prompt, about 25 tokens, in front of every conversation that brings no system message
of its own) is evaluated as a chunk of its own whenever a prompt starts with it, cold or warm,
and the chunks after it are counted from its end. Prompts without a system message then share
the head from the cache (what llama-cpp-python's server gets from unaligned reuse) and the
text stays the same cold and warm. Heads shorter than ``MIN_HEAD_TOKENS`` are not split off:
a chunk of their own costs one more pass over the weights when cold.

An adapter switch changes the weights the cache was computed with, so the cached prefix of
the weights switched away from is kept as a llama.cpp sequence state (its KV cells only, not
``Llama.save_state``'s n_batch x n_vocab scores) and restored on the way back.

This module and ``context_growth`` are the places that touch llama-cpp-python's generation
state (``n_tokens``, ``input_ids``, ``_requires_eval``); pinned to 0.3.x and tested in
tests/test_prefix_cache.py.
"""
from __future__ import annotations

import ctypes
from dataclasses import dataclass
from typing import Hashable, Optional, Sequence

import numpy as np

SEQ = 0  # llama-cpp-python runs every request as sequence 0
# Kept tokens per snapshot: bounds its memory to ~1,024 x the KV bytes per token
# (SmolLM2-135M f16: 22.5 KiB/token, ~23 MB; gemma3-270m f16: 18 KiB/token, ~19 MB; q8_0 about half).
MAX_SNAPSHOT_TOKENS = 1024
# A shorter template head is evaluated with the rest of the prompt (see the module docstring).
MIN_HEAD_TOKENS = 16


def common_prefix(cached: Sequence[int], tokens: Sequence[int]) -> int:
    """How many leading tokens ``cached`` and ``tokens`` share."""
    n = min(len(cached), len(tokens))
    if n == 0:
        return 0
    differ = np.flatnonzero(np.asarray(cached[:n]) != np.asarray(tokens[:n]))
    return int(differ[0]) if len(differ) else n


def template_head(rendered: Sequence[Sequence[int]]) -> list[int]:
    """The fixed head of the chat template from the tokens of conversations that differ only
    in their user message: their common prefix less its last token (BPE may merge that one
    with what follows), or nothing when shorter than ``MIN_HEAD_TOKENS``."""
    n = min(common_prefix(rendered[0], other) for other in rendered[1:]) - 1
    return list(rendered[0][:n]) if n >= MIN_HEAD_TOKENS else []


@dataclass
class PrefixSnapshot:
    """A cached prefix kept aside: its tokens and llama.cpp's state of sequence 0."""

    tokens: list[int]
    state: ctypes.Array
    origin: int  # where its chunks are counted from (0, or the template head's length)

    @property
    def nbytes(self) -> int:
        return len(self.state)


class PrefixCache:
    """Where each prompt evaluation starts, and the prefixes kept per adapter key.

    ``canonical``: how many leading cached tokens were computed as full, aligned chunks of
    a prompt evaluation (the last partial chunk and generated tokens are not); ``origin``:
    where that evaluation's chunks were counted from (0, or the length of ``head``, the chat
    template's fixed head, when the prompt started with it)."""

    def __init__(self, llm, enabled: bool = True, max_snapshot_tokens: int = MAX_SNAPSHOT_TOKENS,
                 head: Sequence[int] = ()):
        self._llm = llm
        self.n_batch = int(llm.n_batch)
        self.enabled = enabled
        self.max_snapshot_tokens = max_snapshot_tokens
        self.head = list(head)
        self.canonical = 0
        self.origin = 0
        self._snapshots: dict[Hashable, PrefixSnapshot] = {}

    def _aligned(self, n: int, origin: int) -> int:
        """The last chunk boundary at or before ``n`` when chunks start at ``origin``."""
        return 0 if n < origin else origin + (n - origin) // self.n_batch * self.n_batch

    def origin_of(self, tokens: Sequence[int]) -> int:
        """Where the chunks of ``tokens`` start: after the template head if it opens them."""
        n = len(self.head)
        return n if n and len(tokens) > n and common_prefix(self.head, tokens[:n]) == n else 0

    def prepare(self, tokens: Sequence[int]) -> int:
        """Make ``Llama.generate(tokens)`` start evaluating at a chunk boundary; returns the
        prompt tokens it takes from the cache. Done for every request, seeded or not: the
        cost is under B tokens evaluated again, and one rule keeps the cache canonical. A
        template head not cached is evaluated here, as the chunk of its own it always is."""
        origin, keep = self.origin_of(tokens), 0
        if self.enabled and origin == self.origin:
            usable = min(self._llm.n_tokens, self.canonical)
            # At least one prompt token is evaluated: its logits give the first token.
            keep = self._aligned(min(common_prefix(self._llm.input_ids[:usable], tokens), len(tokens) - 1), origin)
        # generate() finds tokens[:n_tokens] cached, trims the KV cache there and evaluates
        # the rest from that position; with n_tokens == 0 it resets.
        self._llm.n_tokens = keep
        self.canonical, self.origin = keep, origin
        if keep < origin:
            self._llm.eval(list(tokens[:origin]))
            self.canonical = origin
        return keep

    def evaluated(self, n_prompt: int) -> None:
        """The whole prompt of ``n_prompt`` tokens was evaluated from a chunk boundary."""
        self.canonical = self._aligned(n_prompt, self.origin)

    def invalidate(self) -> None:
        """Forget the cache (a logits probe, other weights): the next prompt runs cold."""
        self._llm.reset()
        self.canonical = self.origin = 0

    def switch(self, old_key: Hashable, new_key: Hashable, keep_old: bool = True) -> None:
        """The weights change from ``old_key``'s to ``new_key``'s: keep the cached prefix
        under ``old_key`` (unless ``keep_old`` is False) and bring back ``new_key``'s, if one
        was kept."""
        import llama_cpp

        if self.enabled and keep_old:
            self._save(old_key)
        llama_cpp.llama_memory_clear(llama_cpp.llama_get_memory(self._llm.ctx), True)
        self.invalidate()
        snapshot = self._snapshots.pop(new_key, None)  # the live cache is that key's now
        if snapshot is not None:
            self._restore(snapshot)

    def drop_except(self, key: Optional[Hashable]) -> None:
        """Forget every kept prefix but ``key``'s (an adapter was unloaded or replaced)."""
        self._snapshots = {k: v for k, v in self._snapshots.items() if k == key}

    def kept(self) -> dict[Hashable, int]:
        """Kept prefixes: tokens by key."""
        return {key: len(snapshot.tokens) for key, snapshot in self._snapshots.items()}

    @property
    def kept_bytes(self) -> int:
        """Memory held by the kept prefixes."""
        return sum(snapshot.nbytes for snapshot in self._snapshots.values())

    def _save(self, key: Hashable) -> None:
        n = self._aligned(min(self.canonical, self._llm.n_tokens, self.max_snapshot_tokens), self.origin)
        self._snapshots.pop(key, None)
        if n == 0:
            return
        # Only the canonical part is worth keeping; the cache is cleared after this anyway.
        state = copy_cells(self._llm, n)
        if state is not None:
            self._snapshots[key] = PrefixSnapshot(self._llm.input_ids[:n].tolist(), state, self.origin)

    def _restore(self, snapshot: PrefixSnapshot) -> None:
        if not put_cells(self._llm, snapshot.state):
            return
        n = len(snapshot.tokens)
        self._llm.input_ids[:n] = snapshot.tokens
        self._llm.n_tokens = n
        # The logits in llama.cpp are not these tokens': generate() must evaluate before sampling.
        if hasattr(self._llm, "_requires_eval"):
            self._llm._requires_eval = True
        self.canonical, self.origin = n, snapshot.origin


def copy_cells(llm, n: int) -> Optional[ctypes.Array]:
    """A copy of sequence 0's first ``n`` KV cells (cells after them are dropped from the
    cache first); None when llama.cpp could not copy them."""
    import llama_cpp

    ctx = llm.ctx
    llama_cpp.llama_memory_seq_rm(llama_cpp.llama_get_memory(ctx), SEQ, n, -1)
    size = llama_cpp.llama_state_seq_get_size(ctx, SEQ)
    state = (ctypes.c_uint8 * size)()
    return state if llama_cpp.llama_state_seq_get_data(ctx, state, size, SEQ) == size else None


def put_cells(llm, state: ctypes.Array) -> bool:
    """Load cells from ``copy_cells`` into ``llm``'s context; False, with the cache cleared,
    when llama.cpp refuses them (the caller then runs the next prompt cold)."""
    import llama_cpp

    if llama_cpp.llama_state_seq_set_data(llm.ctx, state, len(state), SEQ):
        return True
    llama_cpp.llama_memory_clear(llama_cpp.llama_get_memory(llm.ctx), True)
    return False
