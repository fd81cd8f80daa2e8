"""Routes: /health, /v1/models, /v1/chat/completions (streaming or not)."""
from __future__ import annotations

import asyncio
import base64
import hmac
import struct
import time

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from assistant.errors import AuthenticationError, InvalidRequestError, ModelNotFoundError
from assistant.models.catalog import catalog_entries
from assistant.server import chat
from assistant.server.responses import ChatCompletion, EmbeddingList, Health, ModelList, documented
from assistant.server.schemas import ChatCompletionRequest, EmbeddingRequest
from assistant.server.state import ServerState


def server_state(request: Request) -> ServerState:
    return request.app.state.server


def require_api_key(request: Request) -> None:
    """With an API key configured, every /v1 request must carry it as a Bearer token."""
    expected = server_state(request).settings.api_key
    if not expected:
        return
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), expected.encode()):
        raise AuthenticationError("missing or wrong API key (send 'Authorization: Bearer <key>')")


router = APIRouter()
v1 = APIRouter(prefix="/v1", dependencies=[Depends(require_api_key)])


@router.get("/health", responses=documented(Health, extra={503: {"model": Health, "description": "loading"}}))
def health(request: Request) -> JSONResponse:
    """503 while loading (or if loading failed), 200 with the model and profile when ready."""
    state = server_state(request)
    if state.assistant is None:
        status = "error" if state.load_error else "loading"
        return JSONResponse({"status": status, "error": state.load_error, "warnings": state.warnings},
                            status_code=503)
    assistant = state.assistant
    served = assistant.pool.loaded_engine()  # a health check never loads a model
    return JSONResponse({"status": "ok", "profile": assistant.profile.name,
                         "model": served.describe() if served else {"id": assistant.pool.default_name,
                                                                    "loaded": False},
                         "loaded_models": list(assistant.pool.loaded()),
                         "cim": assistant.cim.describe() if assistant.cim is not None else None,
                         "requests_in_progress": assistant.gate.inside,
                         "requests_waiting": assistant.gate.waiting,
                         "cancelled_generations": assistant.cancelled_generations,
                         "abandoned_in_queue": assistant.abandoned_in_queue,
                         "warnings": state.warnings})


@v1.get("/models", responses=documented(ModelList))
def list_models(request: Request) -> dict:
    """The catalog in OpenAI's list format; ``loaded`` marks models in memory."""
    state = server_state(request)
    assistant = state.require_assistant()
    loaded = assistant.pool.loaded()
    created = int(time.time())
    data = [{"id": entry.name, "object": "model", "created": created, "owned_by": "assistant",
             "source": entry.source, "description": entry.description, "loaded": entry.name in loaded,
             "default": entry.name == assistant.pool.default_name}
            for entry in catalog_entries(state.settings)]
    return {"object": "list", "data": data}


@v1.post("/chat/completions", responses=documented(ChatCompletion, stream=True))
async def chat_completions(body: ChatCompletionRequest, request: Request):
    """OpenAI chat completions, plus ``plan`` and ``sources`` (see ``server/chat.py``)."""
    return await chat.chat_completions(body, request, server_state(request))


@v1.post("/embeddings", responses=documented(EmbeddingList))
async def embeddings(body: EmbeddingRequest, request: Request) -> dict:
    """OpenAI embeddings with the notes' encoder (all-MiniLM-L6-v2, 384 dimensions)."""
    state = server_state(request)
    knowledge = state.require_assistant().knowledge
    if body.model not in (None, "default", knowledge.embedding_model_name):
        raise ModelNotFoundError(f"unknown embedding model '{body.model}' (known: default, "
                                 f"{knowledge.embedding_model_name})", param="model")
    texts = body.texts()
    if not texts or any(not isinstance(t, str) or not t for t in texts):
        raise InvalidRequestError("input must be a non-empty string or list of non-empty strings", param="input")
    loop = asyncio.get_running_loop()
    vectors = await loop.run_in_executor(state.executor, knowledge.embed, texts)
    tokens = await loop.run_in_executor(state.executor, knowledge.count_embedding_tokens, texts)
    if body.encoding_format == "base64":  # what the openai client asks for: float32, little-endian
        vectors = [base64.b64encode(struct.pack(f"<{len(v)}f", *v)).decode() for v in vectors]
    return {"object": "list", "model": knowledge.embedding_model_name,
            "data": [{"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(vectors)],
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}


router.include_router(v1)
