"""The Plan: what the router decided for one request, and why. It travels in every response."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Optional

STRATEGIES = ("auto", "base", "rag", "adapter", "rag+adapter")
BACKENDS = ("cpu", "cim")


@dataclass
class Plan:
    """How one request is served."""

    strategy: str  # base | rag | adapter | rag+adapter
    difficulty: str  # general | easy | moderate | hard | unknown
    model: str
    adapter: Optional[str] = None
    k: int = 0
    backend: str = "cpu"
    reasons: list[str] = field(default_factory=list)
    max_context: int = 0  # tokens of context the answer is built in
    passage_tokens: int = 0  # token budget per retrieved passage
    source: str = "defaults"  # defaults | calibration | request

    @property
    def retrieves(self) -> bool:
        return self.strategy in ("rag", "rag+adapter")

    def as_dict(self) -> dict:
        """The ``plan`` object of the HTTP extension."""
        return asdict(self)
