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


def test_the_faster_reader_reads_what_gguf_py_reads(tmp_path):
    """The reader ``gguf_parsed_once`` hands out (a plain-array view of the memory map) gives
    every field and tensor byte for byte as gguf-py's own reader, without copying the file."""
    import numpy as np

    path = resolve_model("default", Settings(home=tmp_path)).path
    reference = gguf.GGUFReader(path)
    with gguf_parsed_once():
        fast = gguf.GGUFReader(path)
    assert type(fast) is not gguf.GGUFReader and not isinstance(fast.data, np.memmap)
    assert list(fast.fields) == list(reference.fields)
    for name, field in reference.fields.items():
        other = fast.fields[name]
        assert (other.types, other.data) == (field.types, field.data), name
        assert all(np.array_equal(a, b) for a, b in zip(other.parts, field.parts)), name
    assert [(t.name, t.tensor_type, list(t.shape)) for t in fast.tensors] == \
        [(t.name, t.tensor_type, list(t.shape)) for t in reference.tensors]
    assert all(np.array_equal(a.data, b.data) for a, b in zip(fast.tensors, reference.tensors))
    assert all(np.shares_memory(t.data, fast.data) for t in fast.tensors)  # views into the mapping


def test_the_converted_tokenizer_is_kept_under_the_home_and_read_back(tmp_path):
    """``load_tokenizer`` with a cache: the first load converts and stores the tokenizer under
    the file's sha256, the next reads it back and tokenizes (and templates) as the conversion
    did; a damaged entry is converted again and replaced, and nothing partial is left."""
    import json

    from assistant.models.catalog import sha256_file
    from assistant.models.hf_model import load_tokenizer

    settings = Settings(home=tmp_path)
    path = resolve_model("default", settings).path
    cache = settings.layout.tokenizers
    texts = ["The passport is in the grey folder.", "Ünïcödé, tabs\tand\nnew lines 12345 <|im_end|>"]
    messages = [{"role": "user", "content": "Where is my passport?"}]

    converted = load_tokenizer(path, cache)
    entry = cache / sha256_file(path)
    assert [p.name for p in cache.iterdir()] == [entry.name] and (entry / "tokenizer.json").is_file()
    read_back = load_tokenizer(path, cache)
    assert type(read_back) is type(converted) and len(read_back) == len(converted) == 49152
    for text in texts:
        assert read_back(text).input_ids == converted(text).input_ids
    assert read_back.apply_chat_template(messages, tokenize=False) == \
        converted.apply_chat_template(messages, tokenize=False)
    assert (read_back.eos_token, read_back.bos_token) == (converted.eos_token, converted.bos_token)

    (entry / "tokenizer.json").write_text("{ not json")
    repaired = load_tokenizer(path, cache)
    assert repaired(texts[1]).input_ids == converted(texts[1]).input_ids
    assert [p.name for p in cache.iterdir()] == [entry.name]
    assert json.loads((entry / "tokenizer.json").read_text())["model"]["type"] == "BPE"  # replaced
    assert load_tokenizer(path, cache)(texts[0]).input_ids == converted(texts[0]).input_ids
