"""The GGUF LoRA adapter file format: the keys llama.cpp needs (``general.type=adapter``,
``adapter.type=lora``, ``adapter.lora.alpha``) and the ``assistant.*`` keys with which an
adapter carries its own config (base model and its hash, rank, data snapshot, budget...).

It lives with the models because the engine reads it when it loads an adapter; the
trainer (``assistant.learn.export``) writes it through ``add_adapter_metadata``.
"""
from __future__ import annotations

from dataclasses import dataclass

from assistant.models.gguf_info import GGUFInfo

OWN_PREFIX = "assistant."  # our keys; llama.cpp ignores them
_STRING_KEYS = ("base_model", "base_sha256", "data_snapshot")
_UINT_KEYS = ("rank", "steps")
_FLOAT_KEYS = ("created", "val_loss", "initial_val_loss", "train_seconds", "budget_s")


@dataclass(frozen=True)
class AdapterMetadata:
    """What an adapter carries about itself (artifacts carry their config)."""

    name: str
    base_model: str
    base_sha256: str
    rank: int
    alpha: int
    target_modules: tuple[str, ...]
    created: float
    data_snapshot: str
    val_loss: float
    initial_val_loss: float
    train_seconds: float
    budget_s: float
    steps: int


def add_adapter_metadata(writer, meta: AdapterMetadata) -> None:
    """Write the adapter's header keys with a ``gguf.GGUFWriter`` (before its tensors)."""
    writer.add_string("general.type", "adapter")
    writer.add_string("adapter.type", "lora")
    writer.add_float32("adapter.lora.alpha", float(meta.alpha))
    writer.add_name(meta.name)
    for key in _STRING_KEYS:
        writer.add_string(OWN_PREFIX + key, getattr(meta, key))
    writer.add_string(OWN_PREFIX + "target_modules", ",".join(meta.target_modules))
    for key in _UINT_KEYS:
        writer.add_uint32(OWN_PREFIX + key, getattr(meta, key))
    for key in _FLOAT_KEYS:
        writer.add_float64(OWN_PREFIX + key, float(getattr(meta, key)))


def read_adapter_metadata(info: GGUFInfo) -> dict:
    """The ``assistant.*`` keys of an adapter's header, plus alpha and name."""
    meta = {key[len(OWN_PREFIX):]: value for key, value in info.metadata.items() if key.startswith(OWN_PREFIX)}
    meta["alpha"] = info.metadata.get("adapter.lora.alpha")
    meta["name"] = info.metadata.get("general.name")
    return meta
