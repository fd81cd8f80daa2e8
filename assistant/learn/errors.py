"""Errors of adapter learning and serving."""
from __future__ import annotations

from assistant.errors import AdapterMismatchError, AssistantError

# The engine raises AdapterMismatchError, so it lives in assistant.errors (models must not
# import learn); it stays importable from here for the callers that always found it here.
__all__ = ["AdapterMismatchError", "AdapterNotFoundError", "NoTrainingDataError", "TrainingRefusedError"]


class TrainingRefusedError(AssistantError):
    """The profile or the free memory does not allow training here."""

    code = "training_not_allowed"


class NoTrainingDataError(AssistantError):
    """Nothing indexed to learn from."""

    code = "no_training_data"


class AdapterNotFoundError(AssistantError):
    """No adapter by that name."""

    status = 404
    code = "adapter_not_found"
