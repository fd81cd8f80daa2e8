"""``learn``: from the indexed notes to an active GGUF adapter, refusing early when the
device cannot train."""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

from assistant.learn.data import Dataset, read_chunks, split_by_document
from assistant.learn.errors import TrainingRefusedError
from assistant.learn.export import write_adapter
from assistant.learn.registry import AdapterRegistry
from assistant.learn.train import TrainConfig, TrainResult
from assistant.models.adapter_format import AdapterMetadata
from assistant.models.catalog import ResolvedModel, resolve_model, sha256_file
from assistant.models.memory import available_ram_mb
from assistant.profiles import DeviceProfile
from assistant.settings import Settings

# Attention-only LoRA under tight resources; MLP too where there is room (the guidelines:
# prefer small rank/alpha, few targets, on constrained devices).
SMALL_TARGETS = ("q_proj", "v_proj")
FULL_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass
class LearnOutcome:
    """The exported adapter and how training went."""

    adapter_path: Path
    result: TrainResult
    dataset: Dataset
    config: TrainConfig
    load_seconds: float


def training_memory_mb(model: ResolvedModel, config: TrainConfig) -> float:
    """float32 weights (dequantized), plus activations kept for backward (about 24 floats per
    hidden unit per token per layer), plus 300 MB for torch itself: an estimate, documented."""
    params = model.info.parameter_count
    hidden = int(model.info.arch_value("embedding_length", 1024))
    layers = int(model.info.arch_value("block_count", 24))
    tokens = model.info.metadata.get("tokenizer.ggml.tokens")
    vocab = int(model.info.arch_value("vocab_size", tokens["length"] if isinstance(tokens, dict) else 32000))
    vocab_logits = config.batch_size * config.max_tokens * 4 * vocab * 3  # logits, softmax, grad
    activations = config.batch_size * config.max_tokens * hidden * layers * 24 * 4
    return (params * 4 + activations + vocab_logits) / 2**20 + 300


def config_for(profile: DeviceProfile, budget_s: Optional[float]) -> TrainConfig:
    """Rank, alpha and targets from the profile; the budget from the flag or the profile."""
    targets = SMALL_TARGETS if profile.lora_rank <= 4 else FULL_TARGETS[:4]
    return TrainConfig(rank=profile.lora_rank, alpha=profile.lora_alpha, target_modules=targets,
                       budget_s=float(budget_s if budget_s is not None else profile.training_budget_s))


def check_can_train(profile: DeviceProfile, model: ResolvedModel, config: TrainConfig,
                    free_mb: Optional[float] = None) -> None:
    """TrainingRefusedError before any work when the profile forbids training or memory is short."""
    if not profile.training_allowed:
        raise TrainingRefusedError(
            f"profile '{profile.name}' does not allow adapter training ({profile.ram_mb} MB RAM); "
            "the assistant uses retrieval from your notes instead", param="profile")
    need = training_memory_mb(model, config)
    if need > profile.ram_budget_mb:
        raise TrainingRefusedError(f"training '{model.name}' needs about {need:.0f} MB but profile "
                                   f"'{profile.name}' allows {profile.ram_budget_mb} MB", param="model")
    free = available_ram_mb() if free_mb is None else free_mb
    if need > free:
        raise TrainingRefusedError(f"training '{model.name}' needs about {need:.0f} MB but only "
                                   f"{free:.0f} MB of RAM is free", param="model")
    if config.budget_s <= 0:
        raise TrainingRefusedError("the training budget must be positive (--budget SECONDS)", param="budget")


def learn(settings: Settings, profile: DeviceProfile, model_name: str = "default",
          budget_s: Optional[float] = None, data_fraction: float = 1.0, activate: bool = True,
          on_progress: Optional[Callable[[dict], None]] = None, config: Optional[TrainConfig] = None) -> LearnOutcome:
    """Train an adapter for ``model_name`` on what is indexed, export the best checkpoint,
    register it and (by default) make it active."""
    model = resolve_model(model_name, settings)
    config = config or config_for(profile, budget_s)
    check_can_train(profile, model, config)
    dataset = split_by_document(read_chunks(settings), data_fraction=data_fraction)

    from assistant.models.hf_model import load_hf_model
    from assistant.learn.train import add_lora, train_lora

    started = time.perf_counter()
    hf_model, tokenizer = load_hf_model(model.path, profile.effective_threads(), settings.layout.tokenizers)
    load_seconds = time.perf_counter() - started
    peft_model = add_lora(hf_model, config)
    result = train_lora(peft_model, tokenizer, dataset, config, on_progress)
    registry = AdapterRegistry(settings)
    path = registry.next_path(model.name)
    meta = AdapterMetadata(
        name=path.stem, base_model=model.name, base_sha256=sha256_file(model.path), rank=config.rank,
        alpha=config.alpha, target_modules=config.target_modules, created=time.time(),
        data_snapshot=dataset.snapshot, val_loss=result.best_val_loss, initial_val_loss=result.initial_val_loss,
        train_seconds=result.train_seconds, budget_s=config.budget_s, steps=result.best_step)
    write_adapter(path, result.best_state, model.info, meta)
    if activate:
        registry.activate(path.stem)
    return LearnOutcome(adapter_path=path, result=result, dataset=dataset, config=config, load_seconds=load_seconds)
