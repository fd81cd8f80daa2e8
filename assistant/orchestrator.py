"""The assistant: turns a request into a plan, gathers what the plan needs, and streams
the answer through the one generation API. Server, CLI and benchmarks share it."""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import Iterator, Optional

from assistant.admission import AdmissionGate
from assistant.knowledge.base import KnowledgeBase
from assistant.knowledge.rag_prompt import build_rag_messages
from assistant.errors import AssistantError, InvalidRequestError
from assistant.models.chat_format import ChatMessage
from assistant.models.engine import Engine, Prompt
from assistant.models.catalog import DEFAULT_ALIAS
from assistant.models.generation import GenerationEvent, GenerationStats, SamplingParams
from assistant.models.pool import ModelPool
from assistant.profiles import DeviceProfile, resolve_profile
from assistant.router.calibration import CalibrationTable
from assistant.router.difficulty import RetrievalSignal, estimate_difficulty, request_text
from assistant.router.model_choice import ModelOption, model_options
from assistant.router.plan import Plan
from assistant.router.policy import Resources, decide
from assistant.settings import Settings

log = logging.getLogger(__name__)


ANSWER_ROOM_TOKENS = 256  # context kept free for the answer when passages are added
SIGNAL_PASSAGES = 5  # passages looked at for the difficulty's retrieval confidence


@dataclass
class AskRequest:
    """A chat request in the runtime's own terms (no HTTP in here)."""

    messages: list[ChatMessage]
    model: Optional[str] = None
    strategy: str = "auto"
    backend: str = "cpu"
    sampling: SamplingParams = field(default_factory=SamplingParams)


@dataclass
class PreparedAnswer:
    """Everything decided before generation starts: plan, sources and the final prompt."""

    plan: Plan
    engine: Engine
    prompt: Prompt
    sources: list[dict] = field(default_factory=list)


class Assistant:
    """Holds the device profile, the loaded models and the gate in front of them."""

    def __init__(self, settings: Settings, profile: DeviceProfile, pool: ModelPool,
                 knowledge: Optional[KnowledgeBase] = None):
        self.settings = settings
        self.profile = profile
        self.pool = pool
        self.knowledge = knowledge or KnowledgeBase.open(settings, n_threads=profile.effective_threads())
        self.gate = AdmissionGate(settings.queue_size)
        self.cancelled_generations = 0  # generations stopped because their client went away
        self.adapter_error: Optional[str] = None
        self._calibration: tuple[Optional[float], Optional[CalibrationTable]] = (None, None)
        self._model_options: Optional[tuple[tuple[str, ...], list[ModelOption]]] = None

    @classmethod
    def load(cls, settings: Settings) -> "Assistant":
        """Detect or load the profile and load the served model (memory guard first)."""
        profile = resolve_profile(settings.profile, settings.profiles_dir, settings.system_root)
        pool = ModelPool(settings, profile)
        assistant = cls(settings, profile, pool)
        assistant.attach_active_adapter(pool.get())
        return assistant

    def attach_active_adapter(self, engine: Engine) -> None:
        """Load the active adapter into ``engine`` if it was trained for that model; a
        mismatch is remembered and explained when a request asks for the adapter."""
        from assistant.learn.registry import AdapterRegistry

        path = AdapterRegistry(self.settings).active_path()
        if path is None or engine.adapter is not None:
            return
        try:
            engine.load_adapter(path)
        except AssistantError as exc:
            self.adapter_error = exc.message

    def resources(self, engine: Engine) -> Resources:
        """What exists now for the router to use."""
        return Resources(has_index=not self.knowledge.is_empty(),
                         adapter_name=engine.adapter.name if engine.adapter else None,
                         adapter_error=self.adapter_error, adapter_model=engine.model.name)

    def calibration(self) -> Optional[CalibrationTable]:
        """The device's calibration table, re-read when its file changes (personalize or
        ``assistant calibrate`` may rewrite it while serving)."""
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

    def prepare(self, request: AskRequest) -> PreparedAnswer:
        """Decide the plan and build the prompt; raises typed errors for bad requests.
        ``auto`` retrieves once up front: the passages give the difficulty its retrieval
        confidence and, when the plan retrieves, go into the prompt."""
        explicit_model = bool(request.model) and request.model != DEFAULT_ALIAS
        engine = self.pool.get(request.model)
        resources = self.resources(engine)
        question, _ = request_text(request.messages[-1:])
        passages, signal = None, None
        if request.strategy == "auto" and resources.has_index and question.strip():
            passages = self.knowledge.search(question, max(self.profile.rag_passages, SIGNAL_PASSAGES))
            signal = RetrievalSignal.from_passages(passages)
        difficulty = estimate_difficulty(request.messages, signal)
        calibration = self.calibration() if request.strategy == "auto" else None
        options = self.model_options(calibration) if request.strategy == "auto" and not explicit_model else []
        plan = decide(request.strategy, request.backend, engine.model.name, self.profile, resources,
                      difficulty, calibration, options, model_explicit=explicit_model)
        if plan.backend == "cim":
            raise InvalidRequestError("backend 'cim' is not available for GGUF chat models yet; use 'cpu'",
                                      param="backend", code="backend_unavailable")
        engine = self._switch(engine, plan)
        plan.max_context = engine.n_ctx
        messages, sources = list(request.messages), []
        if plan.retrieves:
            messages, sources = self.retrieve(engine, messages, plan.k, request.sampling, passages,
                                              plan.passage_tokens)
        prompt = engine.chat_prompt(messages, request.sampling, use_adapter=plan.adapter is not None)
        return PreparedAnswer(plan=plan, engine=engine, prompt=prompt, sources=sources)

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

    def retrieve(self, engine: Engine, messages: list[ChatMessage], k: int,
                 sampling: SamplingParams, passages: Optional[list] = None,
                 passage_tokens: Optional[int] = None) -> tuple[list[ChatMessage], list[dict]]:
        """Search the notes for the last user turn (or reuse ``passages`` already found) and
        put the best ``k`` in the prompt (each cut to ``passage_tokens``, by default the
        profile's), leaving room in the context for the answer."""
        question = next((m.content for m in reversed(messages) if m.role == "user"), "")
        if passages is None:
            passages = self.knowledge.search(question, k) if question.strip() else []
        passages = passages[:k]
        answer_room = min(sampling.max_tokens or ANSWER_ROOM_TOKENS, engine.n_ctx // 4)
        return build_rag_messages(messages, passages, lambda text: len(engine.tokenize(text)),
                                  passage_tokens or self.profile.rag_passage_tokens, engine.n_ctx - answer_room)

    def stream(self, prepared: PreparedAnswer, cancel: Optional[threading.Event] = None) -> Iterator[GenerationEvent]:
        """Generate the answer: TextPiece records, then GenerationStats."""
        for event in prepared.engine.generate(prepared.prompt, cancel):
            if isinstance(event, GenerationStats) and event.finish_reason == "cancelled":
                self.cancelled_generations += 1
            yield event
