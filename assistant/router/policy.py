"""Turns a request, the device profile and what exists into a Plan."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from assistant.errors import InvalidRequestError
from assistant.profiles import DeviceProfile
from assistant.router.plan import BACKENDS, STRATEGIES, Plan


@dataclass(frozen=True)
class Resources:
    """What this device has right now that a plan may use."""

    has_index: bool
    adapter_name: Optional[str]
    adapter_error: Optional[str] = None  # why the active adapter could not be used


def decide(requested_strategy: str, backend: str, model_name: str, profile: DeviceProfile,
           resources: Resources) -> Plan:
    """A request's explicit strategy wins; ``auto`` uses the notes when there are any.
    Every choice is written into ``reasons``."""
    if requested_strategy not in STRATEGIES:
        raise InvalidRequestError(f"strategy must be one of {', '.join(STRATEGIES)}", param="strategy")
    if backend not in BACKENDS:
        raise InvalidRequestError(f"backend must be one of {', '.join(BACKENDS)}", param="backend")
    reasons: list[str] = []
    if requested_strategy == "auto":
        strategy = "rag" if resources.has_index else "base"
        reasons.append("auto: notes are indexed, retrieving" if resources.has_index
                       else "auto: no notes indexed, answering from the base model")
    else:
        strategy = requested_strategy
        reasons.append(f"strategy '{strategy}' requested")
    if strategy in ("rag", "rag+adapter") and not resources.has_index:
        raise InvalidRequestError("strategy 'rag' needs indexed notes: run 'assistant personalize PATH' first",
                                  param="strategy", code="no_index")
    if strategy in ("adapter", "rag+adapter") and not resources.adapter_name:
        why = resources.adapter_error or "no adapter is trained for this model: run 'assistant learn' first"
        raise InvalidRequestError(f"strategy '{strategy}' needs an adapter: {why}", param="strategy",
                                  code="no_adapter")
    k = profile.rag_passages if strategy in ("rag", "rag+adapter") else 0
    if k:
        reasons.append(f"profile '{profile.name}': {k} passages of up to {profile.rag_passage_tokens} tokens")
    return Plan(strategy=strategy, difficulty="unknown", model=model_name,
                adapter=resources.adapter_name if "adapter" in strategy else None,
                k=k, backend=backend, reasons=reasons)
