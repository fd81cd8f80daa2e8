"""Response and error models of the OpenAI-compatible API, for the OpenAPI schema: what a
client (or a fuzzer checking us against our own schema) may expect back from each route.
The routes build their JSON themselves (no per-response validation cost); tests check the
answers against these models."""
from __future__ import annotations

from typing import Any, Optional

from pydantic import BaseModel, ConfigDict


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: Optional[str] = None
    code: Optional[str] = None


class ErrorResponse(BaseModel):
    """OpenAI's error body."""

    error: ErrorDetail


class Health(BaseModel):
    """``GET /health``: 200 when ready, 503 while loading (or after a failed load)."""

    model_config = ConfigDict(extra="allow")
    status: str
    warnings: list[str] = []


class ModelCard(BaseModel):
    model_config = ConfigDict(extra="allow")
    id: str
    object: str
    created: int
    owned_by: str


class ModelList(BaseModel):
    object: str
    data: list[ModelCard]


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int = 0
    total_tokens: int


class ChatMessageOut(BaseModel):
    role: str
    content: Optional[str]


class Choice(BaseModel):
    model_config = ConfigDict(extra="allow")
    index: int
    message: ChatMessageOut
    finish_reason: Optional[str]


class SourceOut(BaseModel):
    path: str
    heading: str
    start_line: int
    end_line: int
    score: float


class ChatCompletion(BaseModel):
    """A whole answer (``stream: false``); ``plan`` and ``sources`` are our extensions.
    With ``stream: true`` the answer is ``text/event-stream`` chunks instead."""

    model_config = ConfigDict(extra="allow")
    id: str
    object: str
    created: int
    model: str
    choices: list[Choice]
    usage: Usage
    plan: dict[str, Any]
    sources: list[SourceOut]


class Embedding(BaseModel):
    object: str
    index: int
    embedding: list[float] | str  # base64 when encoding_format is "base64"


class EmbeddingList(BaseModel):
    object: str
    model: str
    data: list[Embedding]
    usage: Usage


ERRORS = {status: {"model": ErrorResponse, "description": why} for status, why in [
    (400, "bad request (OpenAI error JSON)"), (401, "missing or wrong API key"),
    (403, "a Host this server does not answer to"), (404, "unknown model"), (413, "body over the limit"),
    (503, "busy (Retry-After) or loading")]}


def documented(model: type[BaseModel] | None = None, stream: bool = False, extra: dict | None = None) -> dict:
    """``responses=`` for a route: its 200 model (and SSE when it streams) and the errors."""
    ok: dict = {"model": model} if model else {}
    if stream:
        ok["content"] = {"text/event-stream": {}}  # chunks of ChatCompletionChunk JSON
    return {200: ok, **ERRORS, **(extra or {})}


def without_422(schema: dict) -> dict:
    """FastAPI documents 422 for every body; this server answers bad bodies with 400, as
    OpenAI does. Drop the 422s so the schema says what really comes back."""
    for operations in schema.get("paths", {}).values():
        for operation in operations.values():
            if isinstance(operation, dict):
                operation.get("responses", {}).pop("422", None)
    for name in ("HTTPValidationError", "ValidationError"):
        schema.get("components", {}).get("schemas", {}).pop(name, None)
    return schema
