"""Read a GGUF file's header (metadata and tensor shapes) without loading any weights."""
from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Optional

from assistant.errors import ModelFileError

GGUF_MAGIC = b"GGUF"
# Arrays longer than this (vocabularies, merges) are skipped, only their length is kept.
_MAX_ARRAY_KEPT = 64

# llama.cpp's llama_ftype values -> the quantization names users know.
FILE_TYPES = {
    0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 7: "Q8_0", 8: "Q5_0", 9: "Q5_1", 10: "Q2_K",
    11: "Q3_K_S", 12: "Q3_K_M", 13: "Q3_K_L", 14: "Q4_K_S", 15: "Q4_K_M", 16: "Q5_K_S",
    17: "Q5_K_M", 18: "Q6_K", 19: "IQ2_XXS", 20: "IQ2_XS", 21: "Q2_K_S", 22: "IQ3_XS",
    23: "IQ3_XXS", 24: "IQ1_S", 25: "IQ4_NL", 26: "IQ3_S", 27: "IQ3_M", 28: "IQ2_S",
    29: "IQ2_M", 30: "IQ4_XS", 31: "IQ1_M", 32: "BF16", 36: "TQ1_0", 37: "TQ2_0",
}

# GGUF value type id -> struct format for scalars.
_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
_STRING, _ARRAY = 8, 9


@dataclass
class GGUFInfo:
    """What the header says about a model."""

    path: Path
    version: int
    metadata: dict[str, Any]
    tensor_shapes: dict[str, tuple[int, ...]] = field(repr=False)
    file_size_bytes: int = 0

    @property
    def architecture(self) -> str:
        """e.g. ``llama``, ``gemma3``."""
        return str(self.metadata.get("general.architecture", "unknown"))

    def arch_value(self, key: str, default: Any = None) -> Any:
        """An architecture-scoped key, e.g. ``arch_value("context_length")``."""
        return self.metadata.get(f"{self.architecture}.{key}", default)

    @property
    def name(self) -> str:
        return str(self.metadata.get("general.name", self.path.stem))

    @property
    def parameter_count(self) -> int:
        """Total parameters, summed over tensor shapes."""
        total = 0
        for shape in self.tensor_shapes.values():
            count = 1
            for dim in shape:
                count *= dim
            total += count
        return total

    @property
    def quantization(self) -> str:
        file_type = self.metadata.get("general.file_type")
        return FILE_TYPES.get(file_type, f"type {file_type}") if file_type is not None else "unknown"

    @property
    def context_length(self) -> int:
        """The context the model was trained with."""
        return int(self.arch_value("context_length", 2048))

    @property
    def chat_template(self) -> Optional[str]:
        return self.metadata.get("tokenizer.chat_template")

    @property
    def file_type_label(self) -> str:
        return str(self.metadata.get("general.type", "model"))

    def summary(self) -> dict[str, Any]:
        """A JSON-friendly description for CLIs and ``/v1/models``."""
        return {
            "architecture": self.architecture,
            "name": self.name,
            "parameters": self.parameter_count,
            "quantization": self.quantization,
            "context_length": self.context_length,
            "chat_template": self.chat_template is not None,
            "file_size_bytes": self.file_size_bytes,
        }


def _read(handle: BinaryIO, fmt: str) -> Any:
    size = struct.calcsize(fmt)
    data = handle.read(size)
    if len(data) != size:
        raise EOFError("truncated GGUF header")
    return struct.unpack(fmt, data)[0]


def _read_string(handle: BinaryIO) -> str:
    length = _read(handle, "<Q")
    data = handle.read(length)
    if len(data) != length:
        raise EOFError("truncated GGUF string")
    return data.decode("utf-8", errors="replace")


def _read_value(handle: BinaryIO, value_type: int) -> Any:
    if value_type in _SCALARS:
        return _read(handle, _SCALARS[value_type])
    if value_type == _STRING:
        return _read_string(handle)
    if value_type == _ARRAY:
        item_type = _read(handle, "<I")
        count = _read(handle, "<Q")
        if item_type in _SCALARS and count > _MAX_ARRAY_KEPT:
            handle.seek(count * struct.calcsize(_SCALARS[item_type]), 1)  # skip without decoding
            return {"length": count}
        items = [_read_value(handle, item_type) for _ in range(count)]
        return items if count <= _MAX_ARRAY_KEPT else {"length": count}
    raise ValueError(f"unknown GGUF value type {value_type}")


def read_gguf_info(path: Path) -> GGUFInfo:
    """Parse the header of ``path``; raise ModelFileError if it is not a valid GGUF file."""
    path = Path(path)
    try:
        with path.open("rb") as handle:
            if handle.read(4) != GGUF_MAGIC:
                raise ModelFileError(f"{path} is not a GGUF file (bad magic)", param="model")
            version = _read(handle, "<I")
            tensor_count = _read(handle, "<Q")
            kv_count = _read(handle, "<Q")
            metadata = {}
            for _ in range(kv_count):
                key = _read_string(handle)
                metadata[key] = _read_value(handle, _read(handle, "<I"))
            shapes = {}
            for _ in range(tensor_count):
                name = _read_string(handle)
                n_dims = _read(handle, "<I")
                shapes[name] = tuple(_read(handle, "<Q") for _ in range(n_dims))
                handle.seek(12, 1)  # tensor type (u32) and data offset (u64)
    except (EOFError, ValueError, struct.error, UnicodeError) as exc:
        raise ModelFileError(f"{path} is not a valid GGUF file: {exc}", param="model") from exc
    except OSError as exc:
        raise ModelFileError(f"cannot read {path}: {exc.strerror or exc}", param="model") from exc
    return GGUFInfo(path=path, version=version, metadata=metadata, tensor_shapes=shapes,
                    file_size_bytes=path.stat().st_size)
