"""The assistant: turns a request into a plan, gathers what the plan needs, and streams
the answer through the one generation API. Server, CLI and benchmarks share it."""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Iterator, Optional

from assistant.admission import AdmissionGate
from assistant.knowledge.base import KnowledgeBase
from assistant.knowledge.rag_prompt import build_rag_messages
from assistant.errors import AssistantError, InvalidRequestError
from assistant.models.chat_format import ChatMessage
from assistant.models.engine import Engine, Prompt
from assistant.models.generation import GenerationEvent, GenerationStats, SamplingParams
from assistant.models.pool import ModelPool
from assistant.profiles import DeviceProfile, resolve_profile
from assistant.router.plan import Plan
from assistant.router.policy import Resources, decide
from assistant.settings import Settings


ANSWER_ROOM_TOKENS = 256  # context kept free for the answer when passages are added


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
                         adapter_error=self.adapter_error)

    def prepare(self, request: AskRequest) -> PreparedAnswer:
        """Decide the plan and build the prompt; raises typed errors for bad requests."""
        engine = self.pool.get(request.model)
        plan = decide(request.strategy, request.backend, engine.model.name, self.profile, self.resources(engine))
        if plan.backend == "cim":
            raise InvalidRequestError("backend 'cim' is not available for GGUF chat models yet; use 'cpu'",
                                      param="backend", code="backend_unavailable")
        messages, sources = list(request.messages), []
        if plan.retrieves:
            messages, sources = self.retrieve(engine, messages, plan.k, request.sampling)
        prompt = engine.chat_prompt(messages, request.sampling, use_adapter=plan.adapter is not None)
        return PreparedAnswer(plan=plan, engine=engine, prompt=prompt, sources=sources)

    def retrieve(self, engine: Engine, messages: list[ChatMessage], k: int,
                 sampling: SamplingParams) -> tuple[list[ChatMessage], list[dict]]:
        """Search the notes for the last user turn and put the passages in the prompt,
        leaving room in the context for the answer."""
        question = next((m.content for m in reversed(messages) if m.role == "user"), "")
        passages = self.knowledge.search(question, k) if question.strip() else []
        answer_room = min(sampling.max_tokens or ANSWER_ROOM_TOKENS, engine.n_ctx // 4)
        return build_rag_messages(messages, passages, lambda text: len(engine.tokenize(text)),
                                  self.profile.rag_passage_tokens, engine.n_ctx - answer_room)

    def stream(self, prepared: PreparedAnswer, cancel: Optional[threading.Event] = None) -> Iterator[GenerationEvent]:
        """Generate the answer: TextPiece records, then GenerationStats."""
        for event in prepared.engine.generate(prepared.prompt, cancel):
            if isinstance(event, GenerationStats) and event.finish_reason == "cancelled":
                self.cancelled_generations += 1
            yield event
