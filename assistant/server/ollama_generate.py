"""``POST /api/chat`` and ``/api/generate``: Ollama's shapes around ``Assistant.ask``, run
through the same event bridge as ``/v1/chat/completions``. NDJSON by default (one JSON
object per line: the first carries ``plan`` and ``sources``, then one per batch of text,
then the final one with ``done: true``, ``done_reason`` and counts and durations in
nanoseconds); one object with ``stream: false``."""
from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import AsyncIterator, Callable, Optional, Union

from fastapi import Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.background import BackgroundTask

from assistant.errors import AssistantError, CancelledError
from assistant.models.chat_format import ChatMessage
from assistant.models.generation import GenerationStats, SamplingParams, TextPiece
from assistant.models.grammar import json_grammar
from assistant.orchestrator import Answer, AskRequest, Assistant
from assistant.router.plan import Plan, Strategy
from assistant.server.bridge import EventBridge
from assistant.server.chat import collect, finish_reason, sampling_params
from assistant.server.ollama_models import ModelNames
from assistant.server.ollama_responses import NDJSON
from assistant.server.ollama_schemas import OllamaChatRequest, OllamaGenerateRequest, OllamaOptions
from assistant.server.output_schema import OutputSchema
from assistant.server.state import ServerState

log = logging.getLogger(__name__)
OllamaGenerating = Union[OllamaChatRequest, OllamaGenerateRequest]
ContentShape = Callable[[str], dict]  # text -> the fields that carry it (chat: message, generate: response)


def chat_content(text: str) -> dict:
    """How /api/chat carries text."""
    return {"message": {"role": "assistant", "content": text}}


def generate_content(text: str) -> dict:
    """How /api/generate carries text."""
    return {"response": text}


def chat_messages(body: OllamaChatRequest) -> list[ChatMessage]:
    """The conversation of an /api/chat body."""
    return [ChatMessage(role=message.role, content=message.content) for message in body.messages]


def generate_messages(body: OllamaGenerateRequest) -> list[ChatMessage]:
    """/api/generate's ``system`` and ``prompt`` as a conversation (none: an empty prompt only loads)."""
    if not body.prompt:
        return []
    system = [ChatMessage(role="system", content=body.system)] if body.system else []
    return system + [ChatMessage(role="user", content=body.prompt)]


def format_grammar(output_format: Union[OutputSchema, str, None]) -> Optional[str]:
    """The grammar for Ollama's ``format``: ``"json"`` (any JSON object) or a JSON schema."""
    if not output_format:
        return None
    return json_grammar(output_format.as_json() if isinstance(output_format, OutputSchema) else None, param="format")


def sampling(body: OllamaGenerating) -> SamplingParams:
    """SamplingParams from ``options`` and ``format``; num_predict -1 and -2 mean no limit
    (the engine stops at the end of the context)."""
    options = body.options or OllamaOptions()
    max_tokens = options.num_predict if options.num_predict and options.num_predict > 0 else None
    given = {"max_tokens": max_tokens, "temperature": options.temperature, "top_p": options.top_p,
             "top_k": options.top_k, "seed": options.seed, "repeat_penalty": options.repeat_penalty}
    return sampling_params(given, stop=tuple(options.stop or ()), grammar=format_grammar(body.format))


def nanoseconds(seconds: float) -> int:
    """Ollama counts durations in nanoseconds."""
    return max(0, int(seconds * 1e9))


def now_iso() -> str:
    """Ollama's ``created_at``."""
    return datetime.now(timezone.utc).isoformat()


@dataclass
class OllamaTurn:
    """One generating request: how its answer is shaped, and when its phases began."""

    body: OllamaGenerating
    names: ModelNames
    content: ContentShape
    started: float = field(default_factory=time.perf_counter)
    answered: float = 0.0  # the plan was ready: queue, model load and retrieval are behind

    def record(self, plan: Plan, text: str, done: bool = False) -> dict:
        """A line of the answer."""
        return {"model": self.names.ollama(plan.model), "created_at": now_iso(), **self.content(text), "done": done}

    def durations(self, stats: GenerationStats) -> dict:
        """Counts and durations. ``load_duration`` is everything before generation: the
        queue, loading the model, retrieval and the prompt."""
        return {"total_duration": nanoseconds(time.perf_counter() - self.started),
                "load_duration": nanoseconds(self.answered - self.started),
                "prompt_eval_count": stats.prompt_tokens,
                "prompt_eval_duration": nanoseconds(stats.time_to_first_token_s),
                "eval_count": stats.completion_tokens,
                "eval_duration": nanoseconds(stats.total_s - stats.time_to_first_token_s)}

    def notes(self, plan: Plan) -> dict:
        """Extra fields that say what was changed from the request: a ``num_ctx`` above the
        loaded context is capped (the model is not reloaded for one request)."""
        wanted = self.body.options.num_ctx if self.body.options else None
        if wanted is None or wanted <= plan.max_context:
            return {}
        return {"num_ctx": plan.max_context,
                "warnings": [f"num_ctx {wanted} is more than the loaded context of {self.names.ollama(plan.model)}: "
                             f"capped at {plan.max_context} tokens"]}

    def final(self, plan: Plan, stats: GenerationStats, text: str = "") -> dict:
        """The last line (or the whole answer, not streaming)."""
        return {**self.record(plan, text, done=True), "done_reason": finish_reason(stats),
                **self.durations(stats), **self.notes(plan)}


def extensions(answer: Answer) -> dict:
    """Our ``plan`` and ``sources``, as extra fields."""
    return {"plan": answer.plan.as_dict(), "sources": [source.as_dict() for source in answer.sources]}


def ndjson(record: dict) -> str:
    """One NDJSON line."""
    return json.dumps(record) + "\n"


async def ndjson_lines(turn: OllamaTurn, answer: Answer, bridge: EventBridge,
                       after: Callable[[], None]) -> AsyncIterator[str]:
    """The streamed answer; an error after the first line travels as ``{"error": ...}``,
    which Ollama's clients raise."""
    yield ndjson({**turn.record(answer.plan, ""), **extensions(answer)})
    try:
        async for batch in bridge.batches():
            text = "".join(event.text for event in batch if isinstance(event, TextPiece))
            if text:
                yield ndjson(turn.record(answer.plan, text))
            for stats in (event for event in batch if isinstance(event, GenerationStats)):
                yield ndjson(turn.final(answer.plan, stats))
    except AssistantError as exc:
        yield ndjson({"error": exc.message})
    except Exception as exc:  # noqa: BLE001 - the status is sent already: say it in the stream, as Ollama does
        log.exception("generation failed mid-stream")
        yield ndjson({"error": f"internal error: {type(exc).__name__}"})
    finally:
        after()


async def load_or_unload(state: ServerState, assistant: Assistant, turn: OllamaTurn, catalog_name: str) -> Response:
    """A request with nothing to answer: Ollama's way to load a model, or with
    ``keep_alive: 0`` to unload it."""
    if turn.body.unloads():
        assistant.pool.evict(catalog_name)
        reason = "unload"
    else:
        await asyncio.get_running_loop().run_in_executor(state.executor, assistant.pool.get, catalog_name)
        reason = "load"
    return JSONResponse({"model": turn.names.ollama(catalog_name), "created_at": now_iso(), **turn.content(""),
                         "done": True, "done_reason": reason})


async def reply(body: OllamaGenerating, messages: list[ChatMessage], content: ContentShape, request: Request,
                state: ServerState) -> Response:
    """Start the request at once (its queue place is taken now, or 503), wait for its plan
    while watching the client, then stream or collect the answer; ``keep_alive: 0``
    unloads the model when it is done."""
    assistant = state.require_assistant()
    names = ModelNames(state.settings, assistant.pool)
    catalog_name = names.catalog(body.model)
    turn = OllamaTurn(body, names, content)
    if not messages:
        return await load_or_unload(state, assistant, turn, catalog_name)
    ask = AskRequest(messages=messages, model=catalog_name, strategy=Strategy(body.strategy), sampling=sampling(body))
    bridge = EventBridge()
    bridge.start(assistant, ask, state.executor, state.active_requests)
    try:
        answer = await bridge.answer(request)
    except CancelledError:
        return Response(status_code=CancelledError.status)  # the client has gone: nobody reads this
    turn.answered = time.perf_counter()

    def after() -> None:
        if body.unloads():
            assistant.pool.evict(answer.plan.model)

    if body.stream:
        return StreamingResponse(ndjson_lines(turn, answer, bridge, after), media_type=NDJSON,
                                 headers={"Cache-Control": "no-cache"}, background=BackgroundTask(bridge.cancel.set))
    try:
        text, stats = await collect(bridge, request)
    finally:
        after()
    return JSONResponse({**turn.final(answer.plan, stats, text), **extensions(answer)})
