"""The Plan: what the router decided for one request, and why. It travels in every response."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Optional


class Strategy(StrEnum):
    """How a request uses what was learned about the person."""

    AUTO = "auto"  # the router decides
    BASE = "base"  # the model alone
    RAG = "rag"  # passages from the notes in the prompt
    ADAPTER = "adapter"  # the LoRA adapter trained on the notes
    RAG_ADAPTER = "rag+adapter"

    @property
    def retrieves(self) -> bool:
        """The prompt gets passages from the notes."""
        return self in (Strategy.RAG, Strategy.RAG_ADAPTER)

    @property
    def uses_adapter(self) -> bool:
        """The adapter is on for the generation."""
        return self in (Strategy.ADAPTER, Strategy.RAG_ADAPTER)


class Backend(StrEnum):
    """Where the model's matrix operations run."""

    CPU = "cpu"  # llama.cpp
    CIM = "cim"  # the simulated NVCIM accelerator


STRATEGIES = tuple(s.value for s in Strategy)
BACKENDS = tuple(b.value for b in Backend)


@dataclass
class Plan:
    """How one request is served."""

    strategy: Strategy  # never AUTO once decided
    difficulty: str  # general | easy | moderate | hard | unknown
    model: str
    adapter: Optional[str] = None
    k: int = 0
    backend: Backend = Backend.CPU
    reasons: list[str] = field(default_factory=list)
    max_context: int = 0  # tokens of context the answer is built in
    passage_tokens: int = 0  # token budget per retrieved passage
    source: str = "defaults"  # defaults | calibration | request

    @property
    def retrieves(self) -> bool:
        """The plan puts passages from the notes in the prompt."""
        return self.strategy.retrieves

    def as_dict(self) -> dict:
        """The ``plan`` object of the HTTP extension (plain strings, JSON-ready)."""
        data = asdict(self)
        data["strategy"], data["backend"] = str(self.strategy), str(self.backend)
        return data
