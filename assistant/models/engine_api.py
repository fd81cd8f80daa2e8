"""What every engine offers the rest of the product: one generation API, whether the model
runs in llama.cpp (:class:`~assistant.models.engine.Engine`) or on a simulated CIM chip
(:class:`~assistant.models.cim_engine.CIMEngine`). The conversation-level calls are written
once here; an engine supplies tokenization, prompts that fit its context, the token stream,
logits and a description."""
from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from dataclasses import dataclass, replace
from typing import Iterator, Optional

from assistant.models.chat_format import ChatFormat, ChatMessage
from assistant.models.generation import GenerationEvent, SamplingParams


@dataclass(frozen=True)
class Prompt:
    """A tokenized prompt that fits the context, with its final sampling parameters, and
    whether the loaded LoRA adapter is on for it."""

    tokens: list[int]
    params: SamplingParams
    use_adapter: bool = False


class GenerationEngine(ABC):
    """One loaded model behind the generation API; generates for one request at a time."""

    chat_format: ChatFormat
    n_ctx: int

    def render_chat(self, messages: list[ChatMessage]) -> str:
        """The prompt for a conversation, in the model's chat format."""
        return self.chat_format.render(messages)

    def chat_prompt(self, messages: list[ChatMessage], params: SamplingParams, use_adapter: bool = False) -> Prompt:
        """Render and tokenize a conversation; the chat format's stops join the caller's."""
        stops = tuple(params.stop) + tuple(self.chat_format.stop)
        return self.text_prompt(self.render_chat(messages), replace(params, stop=stops), use_adapter)

    def chat(self, messages: list[ChatMessage], params: SamplingParams,
             cancel: Optional[threading.Event] = None) -> Iterator[GenerationEvent]:
        """Stream a reply to ``messages`` (see ``generate``)."""
        return self.generate(self.chat_prompt(messages, params), cancel)

    @abstractmethod
    def tokenize(self, text: str) -> list[int]:
        """Tokens of ``text`` as the model sees a prompt."""

    @abstractmethod
    def text_prompt(self, text: str, params: SamplingParams, use_adapter: bool = False) -> Prompt:
        """Tokenize ``text`` into a prompt that leaves room to answer (``max_tokens`` clamped)."""

    @abstractmethod
    def generate(self, prompt: Prompt, cancel: Optional[threading.Event] = None) -> Iterator[GenerationEvent]:
        """Stream a continuation: TextPiece records, then one GenerationStats."""

    @abstractmethod
    def logits(self, tokens: list[int], use_adapter: bool = False) -> "list[float]":
        """The next-token logits after ``tokens``."""

    @abstractmethod
    def describe(self) -> dict:
        """Model facts for /health and /v1/models."""
