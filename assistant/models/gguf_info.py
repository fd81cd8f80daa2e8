"""Read a GGUF file's header (metadata and tensor shapes) without loading any weights.

``gguf.GGUFReader`` would do this, but it decodes every element of every array (a
262,144-token vocabulary one by one) and builds a view per tensor: measured on Gemma 3
270M it takes about 10 s where this walk takes tens of milliseconds, and ``assistant
models`` reads every catalog model. So this module walks the header itself, over a
memory map (only the header's pages are ever read), and keeps long arrays as their length.
"""
from __future__ import annotations

import mmap
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from assistant.errors import ModelFileError

GGUF_MAGIC = b"GGUF"
# Arrays longer than this (vocabularies, merges) are skipped, only their length is kept.
_MAX_ARRAY_KEPT = 64

# llama.cpp's llama_ftype values -> the quantization names users know. The same table as
# gguf.LlamaFileType (tests/test_gguf_info.py holds them equal); importing gguf for it
# would cost ~150 ms on every `assistant` start (it imports numpy and all its modules).
FILE_TYPES = {
    0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 7: "Q8_0", 8: "Q5_0", 9: "Q5_1", 10: "Q2_K",
    11: "Q3_K_S", 12: "Q3_K_M", 13: "Q3_K_L", 14: "Q4_K_S", 15: "Q4_K_M", 16: "Q5_K_S",
    17: "Q5_K_M", 18: "Q6_K", 19: "IQ2_XXS", 20: "IQ2_XS", 21: "Q2_K_S", 22: "IQ3_XS",
    23: "IQ3_XXS", 24: "IQ1_S", 25: "IQ4_NL", 26: "IQ3_S", 27: "IQ3_M", 28: "IQ2_S",
    29: "IQ2_M", 30: "IQ4_XS", 31: "IQ1_M", 32: "BF16", 36: "TQ1_0", 37: "TQ2_0", 38: "MXFP4_MOE",
    39: "NVFP4", 40: "Q1_0",
}

# GGUF value type id (gguf.GGUFValueType) -> its little-endian scalar layout; 8 and 9 are
# string and array.
_SCALARS = {type_id: struct.Struct(fmt) for type_id, fmt in
            {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q",
             12: "<d"}.items()}
_STRING, _ARRAY = 8, 9
_U32, _U64 = _SCALARS[4], _SCALARS[10]


@dataclass
class GGUFInfo:
    """What the header says about a model."""

    path: Path
    version: int
    metadata: dict[str, Any]
    tensor_shapes: dict[str, tuple[int, ...]] = field(repr=False)
    file_size_bytes: int = 0
    # ggml type id per tensor (gguf.GGMLQuantizationType): with the shape, its size in bytes
    tensor_types: dict[str, int] = field(default_factory=dict, repr=False)

    @property
    def architecture(self) -> str:
        """e.g. ``llama``, ``gemma3``."""
        return str(self.metadata.get("general.architecture", "unknown"))

    def arch_value(self, key: str, default: Any = None) -> Any:
        """An architecture-scoped key, e.g. ``arch_value("context_length")``."""
        return self.metadata.get(f"{self.architecture}.{key}", default)

    @property
    def name(self) -> str:
        """The model's own name, or the file's stem."""
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
        """The file type's name (``Q4_K_M``), ``type N`` for one this table lacks."""
        file_type = self.metadata.get("general.file_type")
        return FILE_TYPES.get(file_type, f"type {file_type}") if file_type is not None else "unknown"

    @property
    def context_length(self) -> int:
        """The context the model was trained with."""
        return int(self.arch_value("context_length", 2048))

    @property
    def chat_template(self) -> Optional[str]:
        """The Jinja chat template, if the file carries one."""
        return self.metadata.get("tokenizer.chat_template")

    @property
    def file_type_label(self) -> str:
        """``model`` or, for a LoRA file, ``adapter``."""
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


class _HeaderCursor:
    """A read position in the file's bytes; EOFError past the end (a truncated file)."""

    def __init__(self, data: mmap.mmap):
        self.data = data
        self.offset = 0

    def skip(self, size: int) -> int:
        """Step over ``size`` bytes; returns where they start."""
        start, self.offset = self.offset, self.offset + size
        if self.offset > len(self.data):
            raise EOFError("truncated GGUF header")
        return start

    def scalar(self, layout: struct.Struct) -> Any:
        """One little-endian number."""
        return layout.unpack_from(self.data, self.skip(layout.size))[0]

    def string(self) -> str:
        """A length-prefixed UTF-8 string."""
        length = self.scalar(_U64)
        start = self.skip(length)
        return self.data[start:self.offset].decode("utf-8", errors="replace")

    def skip_strings(self, count: int) -> None:
        """Step over ``count`` strings without decoding them (a vocabulary)."""
        for _ in range(count):
            self.skip(self.scalar(_U64))

    def value(self, value_type: int) -> Any:
        """A metadata value; an array longer than _MAX_ARRAY_KEPT becomes ``{"length": n}``."""
        if value_type in _SCALARS:
            return self.scalar(_SCALARS[value_type])
        if value_type == _STRING:
            return self.string()
        if value_type != _ARRAY:
            raise ValueError(f"unknown GGUF value type {value_type}")
        item_type, count = self.scalar(_U32), self.scalar(_U64)
        if count <= _MAX_ARRAY_KEPT:
            return [self.value(item_type) for _ in range(count)]
        if item_type in _SCALARS:
            self.skip(count * _SCALARS[item_type].size)
        elif item_type == _STRING:
            self.skip_strings(count)
        else:
            for _ in range(count):  # nested arrays: rare, walk them
                self.value(item_type)
        return {"length": count}


def _parse_header(cursor: _HeaderCursor, path: Path) -> tuple[int, dict[str, Any], dict[str, tuple[int, ...]],
                                                               dict[str, int]]:
    """(version, metadata, tensor shapes, tensor types) from the start of the file."""
    if cursor.data[:4] != GGUF_MAGIC:
        raise ModelFileError(f"{path} is not a GGUF file (bad magic)", param="model")
    cursor.offset = 4
    version = cursor.scalar(_U32)
    tensor_count, kv_count = cursor.scalar(_U64), cursor.scalar(_U64)
    metadata = {}
    for _ in range(kv_count):
        key = cursor.string()
        metadata[key] = cursor.value(cursor.scalar(_U32))
    shapes, types = {}, {}
    for _ in range(tensor_count):
        name = cursor.string()
        n_dims = cursor.scalar(_U32)
        shapes[name] = tuple(cursor.scalar(_U64) for _ in range(n_dims))
        types[name] = cursor.scalar(_U32)  # the ggml type
        cursor.skip(_U64.size)  # the data offset
    return version, metadata, shapes, types


def read_gguf_info(path: Path) -> GGUFInfo:
    """Parse the header of ``path``; raise ModelFileError if it is not a valid GGUF file."""
    path = Path(path)
    try:
        with path.open("rb") as handle:
            size = path.stat().st_size
            if size < len(GGUF_MAGIC):
                raise ModelFileError(f"{path} is not a GGUF file (bad magic)", param="model")
            with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
                version, metadata, shapes, types = _parse_header(_HeaderCursor(data), path)
    except (EOFError, ValueError, struct.error, UnicodeError) as exc:
        raise ModelFileError(f"{path} is not a valid GGUF file: {exc}", param="model") from exc
    except OSError as exc:
        raise ModelFileError(f"cannot read {path}: {exc.strerror or exc}", param="model") from exc
    return GGUFInfo(path=path, version=version, metadata=metadata, tensor_shapes=shapes, file_size_bytes=size,
                    tensor_types=types)
