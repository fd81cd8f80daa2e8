"""The served GGUF, loaded into torch by transformers (dequantized), for training, the
parity check and the CIM engine. Imports torch: only those code paths use this module."""
from __future__ import annotations

import os
import threading
from contextlib import contextmanager
from pathlib import Path

# Never reach for a model hub: everything comes from the local GGUF.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")

_patch_lock = threading.Lock()


def _plain_array_reader():
    """gguf-py's reader over a plain ndarray view of its memory map.

    ``GGUFReader`` reads every key, value and vocabulary string (about 250,000 small reads
    for SmolLM2) by slicing ``np.memmap``, whose per-slice subclass bookkeeping is most of
    its 5 s parse here. A plain ``ndarray`` view of the same mapping reads the same bytes
    without it (2 s): nothing is copied, and the tensors still point into the file."""
    import gguf
    import numpy as np

    class PlainArrayReader(gguf.GGUFReader):
        @property
        def data(self):
            return self._plain_data

        @data.setter
        def data(self, value):
            self._plain_data = value.view(np.ndarray) if isinstance(value, np.memmap) else value

    return PlainArrayReader


@contextmanager
def gguf_parsed_once():
    """While it is open, gguf-py parses a GGUF file once and builds a tensor-name table
    once per architecture.

    transformers reads the file three times for one load (tokenizer, config, weights: each
    ``GGUFReader`` decodes every vocabulary string) and builds gguf-py's tensor-name table
    again for every module of the model (about 400 times for SmolLM2). Both are pure
    functions of their arguments and the readers are read-only memory maps, so sharing them
    within one load changes nothing but the time. Each file is read by
    ``_plain_array_reader``'s faster reader. Pinned by tests/learn/test_hf_model.py."""
    import gguf

    fast_reader = _plain_array_reader()
    with _patch_lock:
        original_reader, original_names = gguf.GGUFReader, gguf.get_tensor_name_map
        readers: dict = {}
        names: dict = {}

        def reader(path, mode="r"):
            key = (os.fspath(path), mode)
            if key not in readers:
                readers[key] = fast_reader(path, mode)
            return readers[key]

        def name_map(arch, n_blocks):
            if (arch, n_blocks) not in names:
                names[(arch, n_blocks)] = original_names(arch, n_blocks)
            return names[(arch, n_blocks)]

        gguf.GGUFReader, gguf.get_tensor_name_map = reader, name_map
        try:
            yield
        finally:
            gguf.GGUFReader, gguf.get_tensor_name_map = original_reader, original_names


def load_hf_model(gguf_path: Path, threads: int):
    """(model, tokenizer) from a GGUF file; float32 on CPU, in eval mode."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    torch.set_num_threads(threads)
    folder, name = str(gguf_path.parent), gguf_path.name
    with gguf_parsed_once():
        tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
        model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    model.eval()
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer
