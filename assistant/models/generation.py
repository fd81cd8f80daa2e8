"""The one generation API's types: what a caller asks for and the typed records it gets
back. Server, CLI and benchmarks all consume these."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Union


@dataclass(frozen=True)
class SamplingParams:
    """How to sample. ``max_tokens=None`` means: until a stop, or the context is full."""

    max_tokens: Optional[int] = None
    temperature: float = 0.7
    top_p: float = 0.95
    top_k: int = 40
    repeat_penalty: float = 1.1
    stop: tuple[str, ...] = ()
    seed: Optional[int] = None
    logit_bias: tuple[tuple[int, float], ...] = ()  # (token id, bias added to its logit), as OpenAI's
    grammar: Optional[str] = None  # GBNF text the output must match (structured output)


@dataclass(frozen=True)
class TextPiece:
    """Newly generated text, safe to show (never part of a stop string)."""

    text: str


@dataclass(frozen=True)
class GenerationStats:
    """The last record of every generation."""

    finish_reason: str  # "stop" | "length" | "cancelled"
    prompt_tokens: int
    completion_tokens: int
    time_to_first_token_s: float
    total_s: float
    decode_tokens_per_s: float = field(default=0.0)
    prompt_cached_tokens: int = 0  # prompt tokens taken from the KV cache, not evaluated again
    cim: Optional[dict] = None  # the simulated chip's cost of this generation (CIM engine only)

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


GenerationEvent = Union[TextPiece, GenerationStats]

