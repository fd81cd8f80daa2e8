"""Loading the GGUF into torch parses the file once (``gguf_parsed_once``)."""
from __future__ import annotations

import gguf

from assistant.models.catalog import resolve_model
from assistant.models.hf_model import gguf_parsed_once
from assistant.settings import Settings


def test_one_load_parses_the_file_once_and_builds_each_name_table_once(tmp_path):
    path = resolve_model("default", Settings(home=tmp_path)).path
    original_reader, original_names = gguf.GGUFReader, gguf.get_tensor_name_map
    arch = next(key for key, name in gguf.MODEL_ARCH_NAMES.items() if name == "llama")
    fresh = gguf.get_tensor_name_map(arch, 30)
    with gguf_parsed_once():
        first = gguf.GGUFReader(path)
        assert gguf.GGUFReader(str(path)) is first  # a str or a Path: the same file, parsed once
        table = gguf.get_tensor_name_map(arch, 30)
        assert gguf.get_tensor_name_map(arch, 30) is table
        assert gguf.get_tensor_name_map(arch, 2) is not table  # another key builds its own
    # The shared table maps exactly as a fresh one does, and both names are restored after.
    assert table.mapping == fresh.mapping
    assert (gguf.GGUFReader, gguf.get_tensor_name_map) == (original_reader, original_names)
    # The one reader holds the whole file: every tensor and the vocabulary.
    assert len(first.tensors) == 272 and len(first.fields["tokenizer.ggml.tokens"].data) == 49152
