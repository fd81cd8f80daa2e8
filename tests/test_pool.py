"""The model pool and the active adapter: a model evicted and loaded again comes back with
the adapter; activating another adapter while serving is seen by the next request; an
engine that is generating is never evicted. Real GGUF model, real GGUF adapters (random
LoRA weights written by the project's own exporter: their quality is not under test)."""
from __future__ import annotations

import time

import numpy as np
import pytest

from assistant.learn.export import write_adapter
from assistant.learn.registry import AdapterRegistry
from assistant.models.adapter_format import AdapterMetadata
from assistant.models.catalog import resolve_model, sha256_file
from assistant.models.chat_format import ChatMessage
from assistant.models.generation import SamplingParams
from assistant.orchestrator import AskRequest, Assistant
from assistant.settings import Settings


def random_adapter(settings: Settings, name: str, seed: int, scale: float = 0.05) -> str:
    """A rank-2 LoRA on layer 0's q/v projections of the default model, registered as ``name``
    (``scale``: the std of its random A and B weights)."""
    import torch

    model = resolve_model("default", settings)
    width = int(model.info.arch_value("embedding_length"))
    kv_width = width * int(model.info.arch_value("attention.head_count_kv")) // int(
        model.info.arch_value("attention.head_count"))
    generator = torch.Generator().manual_seed(seed)
    state = {}
    for module, out in (("q_proj", width), ("v_proj", kv_width)):
        prefix = f"base_model.model.model.layers.0.self_attn.{module}"
        state[f"{prefix}.lora_A.weight"] = torch.randn(2, width, generator=generator) * scale
        state[f"{prefix}.lora_B.weight"] = torch.randn(out, 2, generator=generator) * scale
    meta = AdapterMetadata(name=name, base_model=model.name, base_sha256=sha256_file(model.path), rank=2, alpha=4,
                           target_modules=("q_proj", "v_proj"), created=time.time(), data_snapshot="test",
                           val_loss=float("nan"), initial_val_loss=float("nan"), train_seconds=0.0, budget_s=0.0,
                           steps=0)
    settings.layout.adapters.mkdir(parents=True, exist_ok=True)
    write_adapter(settings.layout.adapters / f"{name}.gguf", state, model.info, meta)
    return name


def adapter_answer(assistant: Assistant) -> AskRequest:
    request = AskRequest(messages=[ChatMessage("user", "Say something.")], strategy="adapter",
                         sampling=SamplingParams(max_tokens=4, temperature=0.0, seed=0))
    return assistant.answer(request)


@pytest.fixture()
def served(assistant_home):
    settings = Settings(home=assistant_home, n_ctx=512, profile="laptop-16gb")
    AdapterRegistry(settings).activate(random_adapter(settings, "first-v1", seed=1))
    return settings, Assistant.load(settings)


def test_evicted_and_reloaded_model_keeps_the_active_adapter(served):
    settings, assistant = served
    assert adapter_answer(assistant).plan.adapter == "first-v1"
    assert assistant.pool.evict() is True and assistant.pool.loaded() == {}
    answer = adapter_answer(assistant)  # loads the model again
    assert answer.plan.adapter == "first-v1" and answer.text
    assert assistant.pool.loaded_engine().adapter.name == "first-v1"


def test_activating_another_adapter_is_seen_by_the_next_request(served):
    settings, assistant = served
    assert adapter_answer(assistant).plan.adapter == "first-v1"
    AdapterRegistry(settings).activate(random_adapter(settings, "second-v1", seed=2))
    assert adapter_answer(assistant).plan.adapter == "second-v1"
    # the adapter really changed the weights the request ran with
    engine = assistant.pool.get()
    prompt = engine.chat_prompt([ChatMessage("user", "Say something.")], SamplingParams())
    assert not np.allclose(engine.logits(prompt.tokens, use_adapter=True), engine.logits(prompt.tokens))


def test_an_engine_that_is_generating_is_never_evicted(served):
    _, assistant = served
    request = AskRequest(messages=[ChatMessage("user", "Count to fifty.")],
                         sampling=SamplingParams(max_tokens=64, temperature=0.0))
    with assistant.ask(request) as answer:
        next(answer.events)  # the generation holds the engine now
        assert assistant.pool.get().generating
        assert assistant.pool.evict() is False
        answer.events.close()
    assert assistant.pool.evict() is True
