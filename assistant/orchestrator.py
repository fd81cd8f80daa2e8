"""The assistant's one face: ``Assistant.ask`` owns a request's whole life. It takes the
request's place in the admission queue, computes what the conversation asks once (the
difficulty reads it, retrieval searches it), plans, gathers the passages, and hands back
the plan, the sources and the event stream; the place is given back on every way out.
Server, CLI, calibration, the study and the benchmarks all go through it."""
from __future__ import annotations

import logging
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Iterator, Optional

from assistant.admission import AdmissionGate
from assistant.errors import AssistantError, CancelledError, InvalidRequestError
from assistant.knowledge.base import KnowledgeBase
from assistant.knowledge.rag_prompt import Source, build_rag_messages
from assistant.models.catalog import DEFAULT_ALIAS
from assistant.models.chat_format import ChatMessage
from assistant.models.engine import Engine
from assistant.models.engine_api import GenerationEngine, Prompt
from assistant.models.generation import GenerationEvent, GenerationStats, SamplingParams, TextPiece
from assistant.models.pool import ModelPool
from assistant.profiles import DeviceProfile, resolve_profile
from assistant.router.calibration import CalibrationTable
from assistant.router.difficulty import Difficulty, Query, RetrievalSignal, estimate_difficulty
from assistant.router.model_choice import ModelOption, model_options
from assistant.router.plan import Backend, Plan, Strategy
from assistant.router.policy import Resources, decide
from assistant.settings import Settings

log = logging.getLogger(__name__)

ANSWER_ROOM_TOKENS = 256  # context kept free for the answer when passages are added
SIGNAL_PASSAGES = 5  # passages looked at for the difficulty's retrieval confidence
SEARCH_WIDTH_RESTRICTED = 20  # passages searched when only some notes are allowed
CIM_DEFAULT_MAX_TOKENS = 32  # the simulated chip decodes about a token a second: answers stay short unless asked


@dataclass
class AskRequest:
    """A chat request in the runtime's own terms (no HTTP in here). The last three fields
    are for the study and calibration, which vary what HTTP does not let a client choose."""

    messages: list[ChatMessage]
    model: Optional[str] = None
    strategy: Strategy = Strategy.AUTO
    backend: Backend = Backend.CPU
    sampling: SamplingParams = field(default_factory=SamplingParams)
    allowed_paths: Optional[frozenset[str]] = None  # retrieve only from these notes
    k: Optional[int] = None  # passages, instead of the plan's
    passage_tokens: Optional[int] = None  # tokens per passage, instead of the profile's


@dataclass
class Answer:
    """What ``ask`` hands back: the plan and sources (known before the first token) and
    the generation's events (TextPiece records, then one GenerationStats)."""

    plan: Plan
    sources: list[Source]
    events: Iterator[GenerationEvent]


@dataclass
class CompletedAnswer:
    """A whole answer, for callers that do not stream."""

    text: str
    plan: Plan
    sources: list[Source]
    stats: GenerationStats


@dataclass
class Routed:
    """What routing decided for a request, before any generation: the plan, the engine it
    starts from, the query, the passages searched for the difficulty (None when it did
    not search) and the difficulty with the seconds its estimate took."""

    plan: Plan
    engine: Engine
    query: Query
    passages: Optional[list]
    difficulty: Difficulty
    estimate_s: float


@dataclass
class _Prepared:
    plan: Plan
    engine: Engine
    prompt: Prompt
    sources: list[Source]


class Assistant:
    """Holds the device profile, the model pool, the knowledge base and the gate."""

    def __init__(self, settings: Settings, profile: DeviceProfile, pool: ModelPool,
                 knowledge: Optional[KnowledgeBase] = None, cim: Optional[GenerationEngine] = None):
        self.settings = settings
        self.profile = profile
        self.pool = pool
        self.cim = cim  # the simulated chip's engine, on a server started with backend 'cim'
        self.cim_error: Optional[AssistantError] = None  # why it could not load, when it could not

        self.knowledge = knowledge or KnowledgeBase.open(settings, n_threads=profile.effective_threads())
        self.gate = AdmissionGate(settings.queue_size or profile.queue_size, settings.max_wait)
        self.cancelled_generations = 0  # generations stopped because their client went away
        self.abandoned_in_queue = 0  # requests whose client left before their turn
        self._calibration: tuple[Optional[float], Optional[CalibrationTable]] = (None, None)
        self._model_options: Optional[tuple[tuple[str, ...], list[ModelOption]]] = None

    @classmethod
    def load(cls, settings: Settings) -> "Assistant":
        """Detect or load the profile and load the served model (memory guard first)."""
        profile = resolve_profile(settings.profile, settings.profiles_dir, settings.system_root)
        pool = ModelPool(settings, profile)
        pool.get()
        assistant = cls(settings, profile, pool)
        if settings.backend == "cim":
            from assistant.models.cim_chip import load_served_chip

            try:
                assistant.cim = load_served_chip(settings, profile)
            except AssistantError as exc:  # no chip, or it would not fit: 'cpu' still serves
                log.warning("backend 'cim' unavailable: %s", exc.message)
                assistant.cim_error = exc
        return assistant

    @contextmanager
    def ask(self, request: AskRequest, cancel: Optional[threading.Event] = None) -> Iterator[Answer]:
        """``with assistant.ask(request) as answer:`` read ``answer.events``. Raises BusyError
        (queue full), CancelledError (``cancel`` set while waiting) or a typed error for a
        bad request; setting ``cancel`` later stops the generation at the next token."""
        cancel = cancel or threading.Event()
        try:
            with self.gate.turn(cancel):
                prepared = self._prepare(request)
                yield Answer(prepared.plan, prepared.sources, self._generate(prepared, cancel))
        except CancelledError:
            self.abandoned_in_queue += 1
            raise

    def answer(self, request: AskRequest) -> CompletedAnswer:
        """Ask and wait for the whole answer."""
        with self.ask(request) as answer:
            parts, stats = [], None
            for event in answer.events:
                if isinstance(event, TextPiece):
                    parts.append(event.text)
                else:
                    stats = event
        return CompletedAnswer("".join(parts), answer.plan, answer.sources, stats)

    def _generate(self, prepared: _Prepared, cancel: threading.Event) -> Iterator[GenerationEvent]:
        for event in prepared.engine.generate(prepared.prompt, cancel):
            if isinstance(event, GenerationStats) and event.finish_reason == "cancelled":
                self.cancelled_generations += 1
            yield event

    def route(self, request: AskRequest) -> Routed:
        """The plan for ``request`` without generating (``assistant route``, the estimator
        benchmark, and the first half of every ``ask``); typed errors for a bad request.
        ``auto`` searches once up front: the passages give the difficulty its retrieval
        confidence and, when the plan retrieves, go into the prompt."""
        explicit_model = bool(request.model) and request.model != DEFAULT_ALIAS
        engine = self.pool.get(request.model)
        resources = self.resources(engine)
        query = Query.of(request.messages)
        passages, signal = None, None
        if request.strategy == Strategy.AUTO and resources.has_index and query.text.strip():
            passages = self._search(query, request, max(self.profile.rag_passages, SIGNAL_PASSAGES))
            signal = RetrievalSignal.from_passages(passages)
        calibration = self.calibration() if request.strategy == Strategy.AUTO else None
        options = self.model_options(calibration) if request.strategy == Strategy.AUTO and not explicit_model else []
        started = time.perf_counter()
        difficulty = estimate_difficulty(query, signal)
        estimate_s = time.perf_counter() - started
        plan = decide(request.strategy, request.backend, engine.model.name, self.profile, resources,
                      difficulty, calibration, options, model_explicit=explicit_model)
        return Routed(plan, engine, query, passages, difficulty, estimate_s)

    def _prepare(self, request: AskRequest) -> _Prepared:
        """Route, then retrieve and build the prompt."""
        routed = self.route(request)
        plan, query, passages = routed.plan, routed.query, routed.passages
        sampling = request.sampling
        if plan.backend == Backend.CIM:
            engine = self._on_chip(request, plan)
            if sampling.max_tokens is None:
                sampling = replace(sampling, max_tokens=CIM_DEFAULT_MAX_TOKENS)
        else:
            engine = self._switch(routed.engine, plan)
        plan.max_context = engine.n_ctx
        messages, sources = list(request.messages), []
        if plan.retrieves:
            k = request.k or plan.k
            if passages is None or len(passages) < k:
                passages = self._search(query, request, k)
            plan.k = k
            plan.passage_tokens = request.passage_tokens or plan.passage_tokens or self.profile.rag_passage_tokens
            messages, sources = self._with_passages(engine, messages, passages[:k], sampling,
                                                    plan.passage_tokens)
        prompt = engine.chat_prompt(messages, sampling, use_adapter=plan.strategy.uses_adapter)
        return _Prepared(plan, engine, prompt, sources)

    def require_cim(self) -> GenerationEngine:
        """The chip's engine; InvalidRequestError (400) on a server started without one, or the
        error that kept it from loading (no programmed chip, too little memory)."""
        if self.cim is None and self.cim_error is not None:
            raise self.cim_error
        if self.cim is None:
            raise InvalidRequestError("this server runs the 'cpu' backend only: start it with 'assistant serve "
                                      "--backend cim' (after 'assistant cim program') to use 'cim'",
                                      param="backend", code="backend_unavailable")
        return self.cim

    def _on_chip(self, request: AskRequest, plan: Plan) -> GenerationEngine:
        """The chip's engine for a ``cim`` request: 400 when this server has none or it holds
        another model; the router's adapter choices become their adapter-free twins (the chip
        runs the base model), an adapter asked for by name stays an error (the engine's)."""
        chip = self.require_cim()
        if plan.model != chip.model.name:
            if request.model and request.model != DEFAULT_ALIAS and self.pool.canonical_name(request.model) != \
                    chip.model.name:
                raise InvalidRequestError(f"the simulated chip holds {chip.model.name}, not {request.model}",
                                          param="model", code="backend_unavailable")
            plan.reasons.append(f"the simulated chip holds {chip.model.name}")
            plan.model = chip.model.name
        if request.strategy == Strategy.AUTO and plan.strategy.uses_adapter:
            plan.strategy = Strategy.RAG if plan.strategy.retrieves else Strategy.BASE
            plan.adapter = None
            plan.reasons.append("the CIM backend runs the base model, so no adapter")
        return self.cim

    def _search(self, query: Query, request: AskRequest, k: int) -> list:
        """Passages for ``query``; only from ``request.allowed_paths`` when it names some."""
        if not query.text.strip():
            return []
        if request.allowed_paths is None:
            return self.knowledge.search(query.text, k)
        found = self.knowledge.search(query.text, max(k, SEARCH_WIDTH_RESTRICTED))
        return [p for p in found if p.path in request.allowed_paths][:k]

    def _with_passages(self, engine: Engine, messages: list[ChatMessage], passages: list, sampling: SamplingParams,
                       passage_tokens: int) -> tuple[list[ChatMessage], list[Source]]:
        """The conversation with the passages in its system message, leaving room in the
        context for the answer."""
        answer_room = min(sampling.max_tokens or ANSWER_ROOM_TOKENS, engine.n_ctx // 4)
        return build_rag_messages(messages, passages, lambda text: len(engine.tokenize(text)),
                                  passage_tokens, engine.n_ctx - answer_room)

    def _switch(self, engine: Engine, plan: Plan) -> Engine:
        """The engine the plan names; if it cannot be loaded now (RAM), stay on ``engine``
        and say so in the plan."""
        if plan.model == engine.model.name:
            return engine
        try:
            switched = self.pool.get(plan.model)
        except AssistantError as exc:
            plan.reasons.append(f"model switch to {plan.model} failed ({exc.message}); staying on "
                                f"{engine.model.name}")
            plan.model = engine.model.name
            return engine
        log.info("router switched model %s -> %s (%s)", engine.model.name, plan.model, plan.difficulty)
        return switched

    def resources(self, engine: Engine) -> Resources:
        """What exists now for the router to use."""
        return Resources(has_index=not self.knowledge.is_empty(),
                         adapter_name=engine.adapter.name if engine.adapter else None,
                         adapter_error=self.pool.adapter_error(engine.model.name), adapter_model=engine.model.name)

    def calibration(self) -> Optional[CalibrationTable]:
        """The device's calibration table, re-read when its file changes (personalize or
        ``assistant calibrate`` may rewrite it while serving). Read here, before planning:
        the router itself never touches files."""
        path = CalibrationTable.path_for(self.settings)
        try:
            mtime = path.stat().st_mtime
        except OSError:
            return None
        if self._calibration[0] != mtime:
            self._calibration = (mtime, CalibrationTable.load(self.settings))
        return self._calibration[1]

    def model_options(self, calibration: Optional[CalibrationTable]) -> list[ModelOption]:
        """Catalog models the router may switch to (chat models, and those the calibration
        measured), with their memory needs here; computed once per calibration."""
        include = tuple(sorted({c.model for c in calibration.cells})) if calibration else ()
        if self._model_options is None or self._model_options[0] != include:
            self._model_options = (include, model_options(self.settings, self.profile, self.pool.context_for,
                                                          include))
        return self._model_options[1]
