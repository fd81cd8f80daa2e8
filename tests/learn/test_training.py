"""A short real training run, the best-checkpoint rule, the budget, and refusals."""
from __future__ import annotations

import subprocess
import sys

import pytest

from assistant.learn.data import read_chunks, split_by_document
from assistant.learn.errors import NoTrainingDataError, TrainingRefusedError
from assistant.learn.pipeline import check_can_train, config_for, learn
from assistant.learn.registry import AdapterRegistry
from assistant.learn.train import TrainConfig
from assistant.models.catalog import resolve_model
from assistant.models.gguf_info import read_gguf_info
from assistant.profiles import load_profile
from assistant.settings import Settings
from tests.helpers import REPO_ROOT

pytestmark = pytest.mark.slow  # long: skipped by `make test-fast`, run by `make test`


def test_validation_is_held_out_by_document(learn_home):
    dataset = split_by_document(read_chunks(learn_home))
    train_docs = {e.document for e in dataset.train}
    val_docs = {e.document for e in dataset.validation}
    assert val_docs and train_docs and not (train_docs & val_docs)
    assert any(e.prompt.startswith("Question:") for e in dataset.train)
    half = split_by_document(read_chunks(learn_home), data_fraction=0.5)
    assert len({e.document for e in half.train}) < len(train_docs)


BUDGET_S = 30.0


@pytest.fixture(scope="module")
def trained(learn_home):
    events = []
    # Small sequences and a small validation sample: several steps fit even on a busy 2-core box.
    config = TrainConfig(rank=8, alpha=16, budget_s=BUDGET_S, learning_rate=1e-3, batch_size=2, max_tokens=64,
                         max_validation_examples=6, evaluations=3, patience=10)
    outcome = learn(learn_home, load_profile("laptop-16gb"), config=config, on_progress=events.append)
    return outcome, events


def test_short_training_lowers_validation_loss(trained):
    outcome, _ = trained
    result = outcome.result
    assert result.steps > 0
    assert result.best_val_loss < result.initial_val_loss


def test_exported_checkpoint_is_the_best_one_seen(trained):
    outcome, _ = trained
    history = outcome.result.history
    best = min(h["val_loss"] for h in history)
    assert outcome.result.best_val_loss == best
    assert outcome.result.best_step == [h["step"] for h in history if h["val_loss"] == best][0]
    meta = read_gguf_info(outcome.adapter_path).metadata
    assert meta["general.type"] == "adapter" and meta["adapter.type"] == "lora"
    assert meta["adapter.lora.alpha"] == 16.0
    assert meta["assistant.val_loss"] == pytest.approx(best)
    assert meta["assistant.rank"] == 8
    assert len(meta["assistant.base_sha256"]) == 64 and meta["assistant.data_snapshot"]


def test_budget_is_respected_within_ten_percent(trained):
    outcome, events = trained
    result = outcome.result
    assert result.train_seconds <= BUDGET_S * 1.10
    if result.stopped == "budget":
        assert result.train_seconds >= BUDGET_S * 0.90
    assert any(e["kind"] == "step" for e in events) and any(e["kind"] == "eval" for e in events)


def test_registry_marks_the_new_adapter_active(trained, learn_home):
    outcome, _ = trained
    registry = AdapterRegistry(learn_home)
    assert registry.active_path() == outcome.adapter_path
    rows = registry.list()
    assert [r["name"] for r in rows if r["active"]] == [outcome.adapter_path.stem]


def test_served_with_strategy_adapter(trained, learn_home):
    from assistant.models.chat_format import ChatMessage
    from assistant.models.generation import SamplingParams
    from assistant.orchestrator import AskRequest, Assistant

    assistant = Assistant.load(learn_home.model_copy(update={"n_ctx": 512}))
    request = AskRequest(messages=[ChatMessage("user", "Where is the passport?")], strategy="adapter",
                         sampling=SamplingParams(max_tokens=8, temperature=0.0))
    answer = assistant.answer(request)
    assert answer.plan.strategy == "adapter"
    assert answer.plan.adapter == trained[0].adapter_path.stem
    assert answer.text


def test_two_gb_pi_refuses_training_before_any_work(learn_home):
    pi = load_profile("raspberry-pi-4-2gb")
    model = resolve_model("default", learn_home)
    with pytest.raises(TrainingRefusedError, match="does not allow adapter training"):
        check_can_train(pi, model, config_for(pi, 30))
    result = subprocess.run([sys.executable, "-m", "assistant.cli", "learn", "--profile", "raspberry-pi-4-2gb",
                             "--home", str(learn_home.home)], capture_output=True, text=True, cwd=REPO_ROOT,
                            timeout=120)
    assert result.returncode == 1
    assert result.stderr.strip().startswith("error: profile 'raspberry-pi-4-2gb' does not allow")


def test_too_little_free_memory_is_refused(learn_home):
    laptop = load_profile("laptop-16gb")
    with pytest.raises(TrainingRefusedError, match="free"):
        check_can_train(laptop, resolve_model("default", learn_home), config_for(laptop, 30), free_mb=200)


def test_nothing_indexed_is_a_clear_error(tmp_path):
    with pytest.raises(NoTrainingDataError, match="personalize"):
        read_chunks(Settings(home=tmp_path))
