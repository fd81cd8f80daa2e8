"""``POST /v1/chat/completions``: OpenAI's chat completions, streaming or not, plus the
``plan`` and ``sources`` extensions. The request's life is ``Assistant.ask``'s, run through
the event bridge; this module only translates between OpenAI's shapes and ours."""
from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import AsyncIterator, Optional

from fastapi import Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.background import BackgroundTask

from assistant.errors import CancelledError
from assistant.models.chat_format import ChatMessage
from assistant.models.generation import GenerationStats, SamplingParams, TextPiece
from assistant.models.grammar import json_grammar
from assistant.orchestrator import Answer, AskRequest
from assistant.router.plan import Backend, Strategy
from assistant.server.bridge import EventBridge
from assistant.server.schemas import ChatCompletionRequest, ResponseFormat
from assistant.server.state import ServerState


def sampling_params(given: dict, **fixed) -> SamplingParams:
    """SamplingParams from a request's values: those it did not give (None) keep
    SamplingParams' own defaults, so no edge repeats them."""
    return SamplingParams(**{name: value for name, value in given.items() if value is not None}, **fixed)


def output_grammar(response_format: Optional[ResponseFormat]) -> Optional[str]:
    """The GBNF grammar ``response_format`` asks for (None for plain text)."""
    if response_format is None or response_format.type == "text":
        return None
    schema = response_format.json_schema.schema_.as_json() if response_format.type == "json_schema" else None
    return json_grammar(schema, param="response_format")


def ask_request(body: ChatCompletionRequest) -> AskRequest:
    """Our request from OpenAI's body; sampling defaults are SamplingParams' own."""
    given = {"max_tokens": body.max_completion_tokens or body.max_tokens, "temperature": body.temperature,
             "top_p": body.top_p, "seed": body.seed}
    sampling = sampling_params(given, stop=body.stop_list(), logit_bias=tuple((body.logit_bias or {}).items()),
                               grammar=output_grammar(body.response_format))
    messages = [ChatMessage(role="system" if m.role == "developer" else m.role, content=m.text())
                for m in body.messages]
    return AskRequest(messages=messages, model=body.model, strategy=Strategy(body.strategy),
                      backend=Backend(body.backend), sampling=sampling)


def usage(stats: GenerationStats) -> dict:
    """OpenAI's ``usage`` object."""
    return {"prompt_tokens": stats.prompt_tokens, "completion_tokens": stats.completion_tokens,
            "total_tokens": stats.total_tokens,
            "prompt_tokens_details": {"cached_tokens": stats.prompt_cached_tokens}}


def finish_reason(stats: GenerationStats) -> str:
    """OpenAI's finish reason (a cancelled generation has no reader; it says ``stop``)."""
    return "length" if stats.finish_reason == "length" else "stop"


async def chat_completions(body: ChatCompletionRequest, request: Request, state: ServerState) -> Response:
    """Start the request at once (its queue place is taken now, or 503), wait for its
    plan while watching the client, then stream or collect the answer."""
    assistant = state.require_assistant()
    if body.backend == "cim":
        assistant.require_cim()  # refused before the request takes a place in the queue
    bridge = EventBridge()
    bridge.start(assistant, ask_request(body), state.executor, state.active_requests)
    try:
        answer = await bridge.answer(request)
    except CancelledError:
        return Response(status_code=CancelledError.status)  # the client has gone: nobody reads this
    completion_id = f"chatcmpl-{uuid.uuid4().hex[:24]}"
    if body.stream:
        include_usage = bool(body.stream_options and body.stream_options.include_usage)
        return StreamingResponse(sse_events(completion_id, answer, bridge, include_usage),
                                 media_type="text/event-stream", headers={"Cache-Control": "no-cache"},
                                 background=BackgroundTask(bridge.cancel.set))
    return await complete(completion_id, answer, bridge, request)


async def collect(bridge: EventBridge, request: Request) -> tuple[str, GenerationStats]:
    """The whole answer's text and stats; a client that disconnects meanwhile stops the generation."""
    watcher = asyncio.create_task(bridge.watch(request))
    parts, stats = [], None
    try:
        async for batch in bridge.batches():
            for event in batch:
                if isinstance(event, TextPiece):
                    parts.append(event.text)
                elif isinstance(event, GenerationStats):
                    stats = event
    finally:
        watcher.cancel()
    return "".join(parts), stats


async def complete(completion_id: str, answer: Answer, bridge: EventBridge, request: Request) -> JSONResponse:
    """Collect the whole answer into one ``chat.completion``."""
    text, stats = await collect(bridge, request)
    return JSONResponse({
        "id": completion_id, "object": "chat.completion", "created": int(time.time()), "model": answer.plan.model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                     "finish_reason": finish_reason(stats), "logprobs": None}],
        "usage": usage(stats), "plan": answer.plan.as_dict(), "sources": [s.as_dict() for s in answer.sources],
        "timings": {"time_to_first_token_s": stats.time_to_first_token_s, "total_s": stats.total_s,
                    "decode_tokens_per_s": stats.decode_tokens_per_s},
        **({"cim": stats.cim} if stats.cim is not None else {}),
    })


class ChunkWriter:
    """OpenAI's ``chat.completion.chunk`` events. Content chunks differ only in their text,
    so they are a template around ``json.dumps(text)``: no dict built per token."""

    def __init__(self, completion_id: str, model: str):
        self.head = {"id": completion_id, "object": "chat.completion.chunk", "created": int(time.time()),
                     "model": model}
        envelope = json.dumps({**self.head, "choices": [{"index": 0, "delta": {"content": "\0"},
                                                          "finish_reason": None, "logprobs": None}]})
        self._before, self._after = envelope.split('"\\u0000"')
        self._before, self._after = "data: " + self._before, self._after + "\n\n"

    def content(self, text: str) -> str:
        """A chunk carrying ``text``."""
        return f"{self._before}{json.dumps(text)}{self._after}"

    def chunk(self, delta: dict, finish: str | None = None, **extra) -> str:
        """Any other chunk (the first, with ``plan`` and ``sources``; the last, with the finish reason)."""
        payload = {**self.head, "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}],
                   **extra}
        return f"data: {json.dumps(payload)}\n\n"

    def usage_chunk(self, stats: GenerationStats) -> str:
        """The extra chunk ``stream_options.include_usage`` asks for."""
        return f"data: {json.dumps({**self.head, 'choices': [], 'usage': usage(stats)})}\n\n"


async def sse_events(completion_id: str, answer: Answer, bridge: EventBridge,
                     include_usage: bool) -> AsyncIterator[str]:
    """The chunk stream; ``plan`` and ``sources`` travel on the first chunk; the pieces of
    one wake-up go out as one chunk; ends with ``[DONE]``."""
    writer = ChunkWriter(completion_id, answer.plan.model)
    yield writer.chunk({"role": "assistant", "content": ""}, plan=answer.plan.as_dict(),
                       sources=[s.as_dict() for s in answer.sources])
    async for batch in bridge.batches():
        text = "".join(event.text for event in batch if isinstance(event, TextPiece))
        if text:
            yield writer.content(text)
        for stats in (event for event in batch if isinstance(event, GenerationStats)):
            yield writer.chunk({}, finish=finish_reason(stats), **({"cim": stats.cim} if stats.cim is not None else {}))
            if include_usage:
                yield writer.usage_chunk(stats)
    yield "data: [DONE]\n\n"
