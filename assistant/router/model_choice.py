"""Which catalog model serves a request: the strongest that fits the profile's RAM budget,
by the foundation's memory estimate. "Strongest" is the most parameters, among chat
models for chat requests: a base model (Gemma 3 270M, no chat template) continues a
plain transcript instead of following the RAG instruction, so it is used only where the
device's calibration measured it winning."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable, Optional, Sequence

from assistant.errors import AssistantError
from assistant.models.catalog import catalog_entries
from assistant.models.gguf_info import read_gguf_info
from assistant.models.memory import estimate_memory
from assistant.profiles import DeviceProfile
from assistant.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelOption:
    """A catalog model the router may pick, with what it costs here."""

    name: str
    parameters: int
    chat: bool
    needs_mb: float
    fits: bool


def model_options(settings: Settings, profile: DeviceProfile, context_for: Callable[[int], int],
                  include: Sequence[str] = ()) -> list[ModelOption]:
    """Catalog models whose file is at hand without work: chat models, plus the models named
    in ``include`` (e.g. those the calibration measured), which may be assembled now."""
    options = []
    for entry in catalog_entries(settings):
        if not entry.chat and entry.name not in include:
            continue
        try:
            info = read_gguf_info(entry.path(settings))
        except AssistantError as exc:
            log.info("model %s is not available for routing: %s", entry.name, exc.message)
            continue
        estimate = estimate_memory(info, context_for(info.context_length))
        options.append(ModelOption(entry.name, info.parameter_count, entry.chat, estimate.total_mb,
                                   estimate.total_mb <= profile.ram_budget_mb))
    return options


def strongest_chat_model(options: Sequence[ModelOption], current: str,
                         budget_mb: int) -> tuple[str, list[str]]:
    """The chat model with the most parameters that fits ``budget_mb``; ``current`` if none does."""
    fitting = [o for o in options if o.fits and o.chat]
    if not fitting:
        return current, [f"model: no catalog chat model fits {budget_mb} MB, keeping {current}"]
    best = max(fitting, key=lambda o: (o.parameters, o.name == current))
    reasons = [f"model: {best.name} ({best.parameters / 1e6:.0f}M parameters, ~{best.needs_mb:.0f} MB) is the "
               f"strongest chat model within {budget_mb} MB"]
    larger_base = [o.name for o in options if not o.chat and o.fits and o.parameters > best.parameters]
    reasons.append((f"{', '.join(larger_base)} is larger but " if larger_base else "") +
                   "base models without chat template are used only where calibration shows them winning")
    return best.name, reasons


def find_option(options: Sequence[ModelOption], name: str) -> Optional[ModelOption]:
    return next((o for o in options if o.name == name), None)
