"""Routes: /health, /v1/models, /v1/chat/completions (streaming or not)."""
from __future__ import annotations

import asyncio
import base64
import hmac
import struct
import json
import threading
import time
import uuid
from typing import AsyncIterator

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, StreamingResponse

from assistant.errors import AuthenticationError, InvalidRequestError, ModelNotFoundError
from assistant.models.catalog import catalog_entries
from assistant.models.chat_format import ChatMessage
from assistant.models.generation import GenerationStats, SamplingParams, TextPiece
from assistant.orchestrator import AskRequest, PreparedAnswer
from assistant.server.schemas import ChatCompletionRequest, EmbeddingRequest
from assistant.server.state import ServerState
from assistant.server.streaming import iterate_in_thread


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


@router.get("/health")
def health(request: Request) -> JSONResponse:
    """503 while loading (or if loading failed), 200 with the model and profile when ready."""
    state = server_state(request)
    if state.assistant is None:
        status = "error" if state.load_error else "loading"
        return JSONResponse({"status": status, "error": state.load_error}, status_code=503)
    assistant = state.assistant
    served = assistant.pool.loaded_engine()  # a health check never loads a model
    return JSONResponse({"status": "ok", "profile": assistant.profile.name,
                         "model": served.describe() if served else {"id": assistant.pool.default_name,
                                                                    "loaded": False},
                         "loaded_models": list(assistant.pool.loaded()),
                         "requests_in_progress": assistant.gate.inside,
                         "cancelled_generations": assistant.cancelled_generations})


@v1.get("/models")
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


def _ask_request(body: ChatCompletionRequest) -> AskRequest:
    sampling = SamplingParams(
        max_tokens=body.max_completion_tokens or body.max_tokens,
        temperature=0.7 if body.temperature is None else body.temperature,
        top_p=0.95 if body.top_p is None else body.top_p,
        stop=body.stop_list(), seed=body.seed, logit_bias=tuple((body.logit_bias or {}).items()))
    messages = [ChatMessage(role="system" if m.role == "developer" else m.role, content=m.text())
                for m in body.messages]
    return AskRequest(messages=messages, model=body.model, strategy=body.strategy, backend=body.backend,
                      sampling=sampling)


def _usage(stats: GenerationStats) -> dict:
    return {"prompt_tokens": stats.prompt_tokens, "completion_tokens": stats.completion_tokens,
            "total_tokens": stats.total_tokens}


def _finish_reason(stats: GenerationStats) -> str:
    return "length" if stats.finish_reason == "length" else "stop"


@v1.post("/chat/completions")
async def chat_completions(body: ChatCompletionRequest, request: Request):
    """OpenAI chat completions, plus ``plan`` and ``sources``."""
    state = server_state(request)
    assistant = state.require_assistant()
    loop = asyncio.get_running_loop()
    assistant.gate.enter()  # 503 + Retry-After when too many are in
    try:
        prepared = await loop.run_in_executor(state.executor, assistant.prepare, _ask_request(body))
    except BaseException:
        assistant.gate.leave()
        raise
    cancel = threading.Event()
    events = iterate_in_thread(lambda: assistant.stream(prepared, cancel), state.executor, cancel,
                               on_done=assistant.gate.leave)
    completion_id = f"chatcmpl-{uuid.uuid4().hex[:24]}"
    if body.stream:
        include_usage = bool(body.stream_options and body.stream_options.include_usage)
        return StreamingResponse(_sse(completion_id, prepared, events, include_usage),
                                 media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
    return await _complete(completion_id, prepared, events, request, cancel)


async def _complete(completion_id: str, prepared: PreparedAnswer, events: AsyncIterator, request: Request,
                    cancel: threading.Event) -> JSONResponse:
    """Collect the whole answer; a client that disconnects meanwhile stops the generation."""

    async def watch_disconnect() -> None:
        while not cancel.is_set():
            if await request.is_disconnected():
                cancel.set()
                return
            await asyncio.sleep(0.25)

    watcher = asyncio.create_task(watch_disconnect())
    parts, stats = [], None
    try:
        async for event in events:
            if isinstance(event, TextPiece):
                parts.append(event.text)
            elif isinstance(event, GenerationStats):
                stats = event
    finally:
        watcher.cancel()
    return JSONResponse({
        "id": completion_id, "object": "chat.completion", "created": int(time.time()),
        "model": prepared.plan.model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "".join(parts)},
                     "finish_reason": _finish_reason(stats), "logprobs": None}],
        "usage": _usage(stats), "plan": prepared.plan.as_dict(), "sources": prepared.sources,
        "timings": {"time_to_first_token_s": stats.time_to_first_token_s, "total_s": stats.total_s,
                    "decode_tokens_per_s": stats.decode_tokens_per_s},
    })


def _chunk(completion_id: str, created: int, model: str, delta: dict, finish_reason=None, **extra) -> str:
    payload = {"id": completion_id, "object": "chat.completion.chunk", "created": created, "model": model,
               "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": None}], **extra}
    return f"data: {json.dumps(payload)}\n\n"


async def _sse(completion_id: str, prepared: PreparedAnswer, events: AsyncIterator,
               include_usage: bool) -> AsyncIterator[str]:
    """OpenAI's chunk stream; ``plan`` and ``sources`` travel on the first chunk; ends ``[DONE]``."""
    created, model = int(time.time()), prepared.plan.model
    yield _chunk(completion_id, created, model, {"role": "assistant", "content": ""},
                 plan=prepared.plan.as_dict(), sources=prepared.sources)
    async for event in events:
        if isinstance(event, TextPiece):
            yield _chunk(completion_id, created, model, {"content": event.text})
        elif isinstance(event, GenerationStats):
            yield _chunk(completion_id, created, model, {}, finish_reason=_finish_reason(event))
            if include_usage:
                usage_chunk = {"id": completion_id, "object": "chat.completion.chunk", "created": created,
                               "model": model, "choices": [], "usage": _usage(event)}
                yield f"data: {json.dumps(usage_chunk)}\n\n"
    yield "data: [DONE]\n\n"


@v1.post("/embeddings")
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
