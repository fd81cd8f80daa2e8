"""Response models of the Ollama API, for the OpenAPI schema only (the routes build their
JSON themselves): what Ollama's clients, and a fuzzer checking us against our own schema,
may expect back. Extra fields (our ``plan``, ``sources``, ``warnings``) are allowed."""
from __future__ import annotations

from typing import Any, Optional

from pydantic import BaseModel, ConfigDict

from assistant.server.responses import ErrorResponse

NDJSON = "application/x-ndjson"


class OllamaError(BaseModel):
    """Ollama's error body."""

    error: str


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class OllamaVersion(_Open):
    version: str


class OllamaDetails(_Open):
    parent_model: str
    format: str
    family: str
    families: Optional[list[str]]
    parameter_size: str
    quantization_level: str


class OllamaModel(_Open):
    name: str
    model: str
    modified_at: str
    size: int
    digest: str
    details: OllamaDetails


class OllamaTags(_Open):
    models: list[OllamaModel]


class OllamaRunningModel(OllamaModel):
    expires_at: str
    size_vram: int
    context_length: int


class OllamaRunning(_Open):
    models: list[OllamaRunningModel]


class OllamaShow(_Open):
    modelfile: str
    parameters: str
    template: str
    details: OllamaDetails
    model_info: dict[str, Any]
    capabilities: list[str]


class OllamaGenerated(_Open):
    """An answer of /api/chat (``message``) or /api/generate (``response``); streamed, each
    NDJSON line has this shape and the last has ``done: true`` and the counts."""

    model: str
    created_at: str
    done: bool
    done_reason: Optional[str] = None
    message: Optional[dict[str, Any]] = None
    response: Optional[str] = None
    total_duration: Optional[int] = None
    load_duration: Optional[int] = None
    prompt_eval_count: Optional[int] = None
    prompt_eval_duration: Optional[int] = None
    eval_count: Optional[int] = None
    eval_duration: Optional[int] = None


class OllamaEmbed(_Open):
    model: str
    embeddings: list[list[float]]


class OllamaEmbedding(_Open):
    embedding: list[float]


_OLLAMA_ERRORS = [(400, "bad request"), (401, "missing or wrong API key"), (404, "unknown model"),
                  (503, "busy (Retry-After) or loading")]
# Answered by middlewares before any route, in the OpenAI shape
_EDGE_ERRORS = [(403, "a Host this server does not answer to"), (413, "body over the limit")]


def ollama_documented(model: type[BaseModel], stream: bool = False) -> dict:
    """``responses=`` for an Ollama route: its 200 model (NDJSON too when it streams) and its errors."""
    ok: dict = {"model": model}
    if stream:
        ok["content"] = {NDJSON: {"schema": {"type": "string"}}}
    errors = {status: {"model": OllamaError, "description": why} for status, why in _OLLAMA_ERRORS}
    edge = {status: {"model": ErrorResponse, "description": why} for status, why in _EDGE_ERRORS}
    return {200: ok, **errors, **edge}
