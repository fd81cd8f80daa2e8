"""Typed domain errors. Each edge translates them once: the HTTP server into OpenAI's
error JSON, the CLI into one line on stderr and a non-zero exit."""
from __future__ import annotations

from typing import Optional


class AssistantError(Exception):
    """Base of every error a user can cause or meet; carries its HTTP/OpenAI mapping."""

    status: int = 400
    type: str = "invalid_request_error"
    code: Optional[str] = None

    def __init__(self, message: str, *, param: Optional[str] = None, code: Optional[str] = None):
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code

    def to_openai(self) -> dict:
        """The OpenAI error body: ``{"error": {"message", "type", "param", "code"}}``."""
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


class InvalidRequestError(AssistantError):
    """The request is malformed or has a bad value."""

    code = "invalid_request"


class ModelNotFoundError(AssistantError):
    """The named model is neither in the catalog nor a readable .gguf file."""

    status = 404
    code = "model_not_found"


class ModelFileError(AssistantError):
    """A model file exists but is not a valid GGUF, or fails its checksum."""

    code = "invalid_model_file"


class ModelTooLargeError(AssistantError):
    """The model would not fit in the profile's RAM budget or the free RAM."""

    code = "model_too_large"


class ContextLengthExceededError(AssistantError):
    """The prompt does not fit in the model's context window."""

    code = "context_length_exceeded"


class AdapterMismatchError(AssistantError):
    """The adapter was trained for another base model (the engine refuses to load it)."""

    code = "adapter_base_mismatch"


class ProfileNotFoundError(AssistantError):
    """No device profile of that name."""

    status = 404
    code = "profile_not_found"


class AuthenticationError(AssistantError):
    """Missing or wrong API key."""

    status = 401
    type = "authentication_error"
    code = "invalid_api_key"


class PayloadTooLargeError(AssistantError):
    """The request body exceeds the configured limit."""

    status = 413
    code = "payload_too_large"


class BusyError(AssistantError):
    """The model's queue is full; retry later."""

    status = 503
    type = "server_error"
    code = "server_busy"
    retry_after_s = 1


class NotReadyError(AssistantError):
    """The model is still loading (or failed to load)."""

    status = 503
    type = "server_error"
    code = "model_loading"


class OfflineError(AssistantError):
    """A network operation the user asked for could not reach its host."""

    status = 502
    type = "server_error"
    code = "offline"


class CancelledError(AssistantError):
    """The client went away before its request was served (nobody reads this answer)."""

    status = 499  # nginx's "client closed request": no standard status fits a gone client
    type = "server_error"
    code = "cancelled"


class DiskFullError(AssistantError):
    """The disk holding the data folder is full; what was there before is unchanged."""

    status = 507
    type = "server_error"
    code = "disk_full"
