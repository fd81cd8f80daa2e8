"""Lower-bit variants of a catalog model, made on the device with llama.cpp's quantize
API (requantizing the shipped weights), for the compression studies. Cached under
``$ASSISTANT_HOME/models/variants``."""
from __future__ import annotations

import os
from pathlib import Path

from assistant.errors import InvalidRequestError, ModelFileError
from assistant.models.catalog import ResolvedModel
from assistant.models.gguf_info import FILE_TYPES

FTYPE_BY_NAME = {name: number for number, name in FILE_TYPES.items()}
# K-quants pack 256 weights per block; rows whose width is not a multiple of 256 (SmolLM2's
# 576, Gemma 3 270M's 640) fall back to 32-weight blocks (q4_0/q5_0), so asking those models
# for Q2_K gives about 5.1 bits per weight. Q4_0 (4.5 bpw) is their real lower-bit step.
K_QUANT_BLOCK = 256


def lower_bit_variant(model: ResolvedModel) -> str:
    """The lower-bit requantization worth studying for this model (see K_QUANT_BLOCK)."""
    width = int(model.info.arch_value("embedding_length", 0))
    return "Q2_K" if width and width % K_QUANT_BLOCK == 0 else "Q4_0"


def quantized_variant(model: ResolvedModel, quantization: str, folder: Path, threads: int = 2) -> Path:
    """``model`` requantized to ``quantization`` (e.g. Q3_K_M, Q2_K); made once, then reused.
    Written to a temp file and renamed, so an interrupted run leaves no broken variant."""
    import llama_cpp

    if quantization not in FTYPE_BY_NAME:
        raise InvalidRequestError(f"unknown quantization '{quantization}'", param="quantization")
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{model.name}.{quantization}.gguf"
    if target.is_file():
        return target
    tmp = folder / f".{target.name}.tmp"
    from llama_cpp import _logger

    _logger.set_verbose(False)  # llama.cpp logs every tensor it converts
    params = llama_cpp.llama_model_quantize_default_params()
    params.nthread = threads
    params.ftype = FTYPE_BY_NAME[quantization]
    params.allow_requantize = True  # the source is already quantized (Q4_1 / Q4_K_M)
    status = llama_cpp.llama_model_quantize(str(model.path).encode(), str(tmp).encode(), params)
    if status != 0 or not tmp.is_file():
        if tmp.exists():
            tmp.unlink()
        raise ModelFileError(f"llama.cpp could not quantize {model.name} to {quantization} (status {status})")
    os.replace(tmp, target)
    return target
