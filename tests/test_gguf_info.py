"""The header walk in ``assistant.models.gguf_info`` agrees with the ``gguf`` package: the
same file types and value types, and the same metadata and shapes as ``gguf.GGUFReader``."""
from __future__ import annotations

import re
import time

import gguf
import numpy as np

from assistant.models import gguf_info
from assistant.models.gguf_info import FILE_TYPES, read_gguf_info
from tests.helpers import write_gguf


def test_file_types_are_gguf_llama_file_types():
    for number, name in FILE_TYPES.items():
        member = gguf.LlamaFileType(number)
        assert member.name.split("_", 1)[1] == name, (number, member.name)


def test_value_types_are_gguf_value_types():
    assert gguf_info._STRING == gguf.GGUFValueType.STRING
    assert gguf_info._ARRAY == gguf.GGUFValueType.ARRAY
    for type_id, layout in gguf_info._SCALARS.items():
        name = gguf.GGUFValueType(type_id).name  # e.g. UINT16, FLOAT64, BOOL
        bits = int(re.sub(r"\D", "", name) or 8)
        assert layout.size * 8 == bits, name
        kind = layout.format[-1]
        if name.startswith("UINT"):
            assert kind in "BHIQ", name
        elif name.startswith("INT"):
            assert kind in "bhiq", name
        elif name.startswith("FLOAT"):
            assert kind in "fd", name
        else:
            assert (name, kind) == ("BOOL", "?")


def _rich_gguf(path):
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name("rich")
    writer.add_context_length(4096)
    writer.add_token_list([f"tok{i}" for i in range(300)])  # long string array: length only
    writer.add_array("test.short", [1, 2, 3])
    writer.add_array("test.long_ints", list(range(1000)))
    writer.add_float64("test.loss", 1.25)
    writer.add_bool("test.flag", True)
    writer.add_tensor("token_embd.weight", np.zeros((32, 16), dtype=np.float32))
    writer.add_tensor("blk.0.attn_q.weight", np.zeros((16, 16), dtype=np.float16))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def test_header_agrees_with_gguf_reader(tmp_path):
    path = _rich_gguf(tmp_path / "rich.gguf")
    info = read_gguf_info(path)
    reader = gguf.GGUFReader(path)
    for key, field in reader.fields.items():
        if key.startswith("GGUF."):
            continue
        if field.types[0] == gguf.GGUFValueType.ARRAY and len(field.data) > gguf_info._MAX_ARRAY_KEPT:
            assert info.metadata[key] == {"length": len(field.data)}, key
        else:
            assert info.metadata[key] == field.contents(), key
    assert info.tensor_shapes == {t.name: tuple(int(d) for d in t.shape) for t in reader.tensors}
    assert info.version == reader.fields["GGUF.version"].contents()


def test_only_the_header_is_read(tmp_path):
    huge = write_gguf(tmp_path / "huge.gguf", sparse_size_bytes=8 * 1024**3)  # a hole: no disk used
    started = time.perf_counter()
    info = read_gguf_info(huge)
    assert time.perf_counter() - started < 1.0
    assert info.file_size_bytes == 8 * 1024**3 and info.name == "fake-test-model"
