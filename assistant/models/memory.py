"""The memory guard: estimate what a model needs before loading it, and refuse a model
that would not fit, instead of letting the OS kill the process."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Optional

import psutil

from assistant.errors import ModelTooLargeError
from assistant.models.gguf_info import GGUFInfo
from assistant.profiles import DeviceProfile

MB = 1024 * 1024
# Python, uvicorn, llama.cpp's own buffers: measured around 60-80 MB on x86_64 (see README).
RUNTIME_OVERHEAD_MB = 80.0
F16_BYTES = 2
F32_BYTES = 4


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes, in MB, that loading a model at a given context will take."""

    weights_mb: float
    kv_cache_mb: float
    compute_mb: float
    overhead_mb: float
    n_ctx: int

    @property
    def total_mb(self) -> float:
        return self.weights_mb + self.kv_cache_mb + self.compute_mb + self.overhead_mb

    def as_dict(self) -> dict:
        """JSON-friendly, with the total."""
        return {**asdict(self), "total_mb": round(self.total_mb, 1)}


# bytes per cached K/V element by KV cache type (q8_0: 34 bytes per block of 32)
KV_ELEMENT_BYTES = {"f16": 2.0, "q8_0": 34 / 32}


def estimate_memory(info: GGUFInfo, n_ctx: int, n_batch: int = 512, kv_cache_type: str = "f16") -> MemoryEstimate:
    """Weights (the file is mmapped, so its size), an f16 KV cache for every layer at
    ``n_ctx``, and llama.cpp's compute buffer for one batch (logits plus the widest
    intermediate activation and the attention scores)."""
    n_layer = int(info.arch_value("block_count", 0))
    n_embd = int(info.arch_value("embedding_length", 0))
    n_head = int(info.arch_value("attention.head_count", 1)) or 1
    n_head_kv = int(info.arch_value("attention.head_count_kv", n_head)) or n_head
    key_len = int(info.arch_value("attention.key_length", n_embd // n_head))
    value_len = int(info.arch_value("attention.value_length", n_embd // n_head))
    n_ff = int(info.arch_value("feed_forward_length", 4 * n_embd) or 4 * n_embd)
    vocab = info.metadata.get("tokenizer.ggml.tokens")
    n_vocab = int(info.arch_value("vocab_size", vocab["length"] if isinstance(vocab, dict) else 32000))

    kv_bytes = n_layer * n_ctx * n_head_kv * (key_len + value_len) * KV_ELEMENT_BYTES.get(kv_cache_type, F16_BYTES)
    batch = min(n_batch, n_ctx)
    compute_bytes = F32_BYTES * batch * (n_vocab + 2 * max(n_ff, n_embd) + n_head * n_ctx)
    return MemoryEstimate(
        weights_mb=info.file_size_bytes / MB,
        kv_cache_mb=kv_bytes / MB,
        compute_mb=compute_bytes / MB,
        overhead_mb=RUNTIME_OVERHEAD_MB,
        n_ctx=n_ctx,
    )


def available_ram_mb() -> float:
    """RAM the OS can give us now without swapping."""
    return psutil.virtual_memory().available / MB


def check_fits(model_name: str, estimate: MemoryEstimate, profile: DeviceProfile,
               available_mb: Optional[float] = None) -> None:
    """Raise ModelTooLargeError if the model exceeds the profile's RAM budget or the free RAM."""
    need = estimate.total_mb
    detail = (f"weights {estimate.weights_mb:.0f} + KV cache {estimate.kv_cache_mb:.0f} at context "
              f"{estimate.n_ctx} + compute {estimate.compute_mb:.0f} + runtime {estimate.overhead_mb:.0f}")
    if need > profile.ram_budget_mb:
        raise ModelTooLargeError(
            f"model '{model_name}' needs about {need:.0f} MB ({detail}) but profile "
            f"'{profile.name}' allows {profile.ram_budget_mb} MB; choose a smaller model or context",
            param="model")
    free = available_ram_mb() if available_mb is None else available_mb
    if need > free:
        raise ModelTooLargeError(
            f"model '{model_name}' needs about {need:.0f} MB ({detail}) but only {free:.0f} MB of RAM "
            f"is free now", param="model")
