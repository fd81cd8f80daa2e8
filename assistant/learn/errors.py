"""Errors of adapter learning and serving."""
from __future__ import annotations

from assistant.errors import AssistantError


class TrainingRefusedError(AssistantError):
    """The profile or the free memory does not allow training here."""

    code = "training_not_allowed"


class NoTrainingDataError(AssistantError):
    """Nothing indexed to learn from."""

    code = "no_training_data"


class AdapterMismatchError(AssistantError):
    """The adapter was trained for another base model."""

    code = "adapter_base_mismatch"


class AdapterNotFoundError(AssistantError):
    """No adapter by that name."""

    status = 404
    code = "adapter_not_found"
