"""Write a trained LoRA as a llama.cpp GGUF adapter: the header keys of
``assistant.models.adapter_format``, tensors ``<base>.lora_a`` / ``.lora_b``.

For llama-family models the base conversion permuted the rows of Q and K (rotary
embedding layout); the same permutation is applied to ``lora_b`` here, since
``delta W = B @ A`` and permuting rows of delta W permutes rows of B."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from assistant.models.adapter_format import AdapterMetadata, add_adapter_metadata
from assistant.models.gguf_info import GGUFInfo

__all__ = ["AdapterMetadata", "HF_TO_GGUF", "gguf_tensors", "permute_rows", "write_adapter"]

# Hugging Face module name -> llama.cpp tensor name, per layer.
HF_TO_GGUF = {
    "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down",
}
# Architectures whose GGUF conversion permutes Q/K rows.
PERMUTED_QK = {"llama"}
_PEFT_NAME = re.compile(r"layers\.(\d+)\.(.+)\.lora_([AB])(?:\.default)?\.weight$")


def permute_rows(weights: np.ndarray, n_head: int) -> np.ndarray:
    """llama.cpp's Q/K row permutation: within each head, interleaved rotary pairs become
    two halves."""
    rows = weights.shape[0]
    return (weights.reshape(n_head, 2, rows // n_head // 2, *weights.shape[1:])
            .swapaxes(1, 2).reshape(weights.shape))


def gguf_tensors(lora_state: dict, base: GGUFInfo) -> dict[str, np.ndarray]:
    """Map peft's LoRA tensors to llama.cpp names (A: r x in, B: out x r), permuting Q/K B rows."""
    n_head = int(base.arch_value("attention.head_count"))
    n_head_kv = int(base.arch_value("attention.head_count_kv", n_head))
    tensors = {}
    for name, tensor in lora_state.items():
        match = _PEFT_NAME.search(name)
        if not match:
            continue
        layer, module, which = match.groups()
        if module not in HF_TO_GGUF:
            raise ValueError(f"no llama.cpp tensor for module {module}")
        array = tensor.detach().to("cpu").float().numpy()
        if which == "B" and base.architecture in PERMUTED_QK:
            if module == "self_attn.q_proj":
                array = permute_rows(array, n_head)
            elif module == "self_attn.k_proj":
                array = permute_rows(array, n_head_kv)
        suffix = "lora_a" if which == "A" else "lora_b"
        tensors[f"blk.{layer}.{HF_TO_GGUF[module]}.weight.{suffix}"] = np.ascontiguousarray(array)
    return tensors


def write_adapter(path: Path, lora_state: dict, base: GGUFInfo, meta: AdapterMetadata) -> Path:
    """Write the GGUF adapter to ``path`` (via a temp file, renamed when complete)."""
    import gguf

    tensors = gguf_tensors(lora_state, base)
    if not tensors:
        raise ValueError("no LoRA tensors to export")
    tmp = path.with_name(f".{path.name}.tmp")
    writer = gguf.GGUFWriter(str(tmp), base.architecture)
    add_adapter_metadata(writer, meta)
    for name, array in sorted(tensors.items()):
        writer.add_tensor(name, array.astype(np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    tmp.replace(path)
    return path
