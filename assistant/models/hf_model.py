"""The served GGUF, loaded into torch by transformers (dequantized), for training, the
parity check and the CIM engine. Imports torch: only those code paths use this module."""
from __future__ import annotations

import os
import shutil
import tempfile
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Optional

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


def load_hf_model(gguf_path: Path, threads: int, tokenizer_cache: Optional[Path] = None):
    """(model, tokenizer) from a GGUF file; float32 on CPU, in eval mode. ``tokenizer_cache``
    (a folder under the data dir): keep the converted tokenizer there and read it back on the
    next load of the same file (see :func:`load_tokenizer`)."""
    import torch
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    torch.set_num_threads(threads)
    with gguf_parsed_once():
        tokenizer = load_tokenizer(gguf_path, tokenizer_cache)
        model = AutoModelForCausalLM.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name,
                                                     dtype=torch.float32)
    model.eval()
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


def load_tokenizer(gguf_path: Path, cache: Optional[Path] = None):
    """The GGUF's tokenizer as transformers converts it, through ``cache`` when given.

    The conversion rebuilds a 49k-token BPE from the file's vocabulary and merges in Python
    (about 5 s here, more than the weights); its saved form reads back in 0.3 s. The entry is
    named by the file's sha256, so a changed model file never meets an old tokenizer; it is
    written to a temporary folder and renamed into place, so an interrupted write leaves no
    entry; an entry that does not read back is converted and written again."""
    from transformers import AutoTokenizer

    def convert():
        return AutoTokenizer.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name)

    if cache is None:
        return convert()
    from assistant.models.catalog import sha256_file

    entry = cache / sha256_file(gguf_path)
    if entry.is_dir():
        try:
            return AutoTokenizer.from_pretrained(str(entry))
        except Exception:  # noqa: BLE001 - a damaged entry: convert again below and replace it
            shutil.rmtree(entry, ignore_errors=True)
    tokenizer = convert()
    cache.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=".partial-", dir=cache))
    try:
        tokenizer.save_pretrained(str(partial))
        os.replace(partial, entry)
    except OSError:  # another load wrote it first, or the disk is full: the entry is only a cache
        pass
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return tokenizer
