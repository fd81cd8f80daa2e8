"""Encoding text to vectors with onnxruntime + tokenizers (no torch), and counting
encoder tokens for the chunker."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Optional

import numpy as np

from assistant.knowledge.encoders import DEFAULT_ENCODER, ENCODERS, EncoderSpec, ensure_onnx, source_dir
from assistant.knowledge.errors import EncoderError
from assistant.settings import Settings


def load_tokenizer(path: Path, max_length: int):
    """A fast tokenizer that pads to the longest text in a batch and truncates at
    ``max_length`` (the shipped tokenizer.json pads everything to 128, which wastes time
    on short texts and cuts long ones shorter than sentence-transformers does)."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(path))
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_length)
    return tokenizer


class TokenCounter:
    """Counts encoder tokens (no special tokens) for chunk bounds; needs no ONNX model."""

    def __init__(self, spec: EncoderSpec):
        from tokenizers import Tokenizer

        self._tokenizer = Tokenizer.from_file(str(source_dir(spec) / "tokenizer.json"))
        self._tokenizer.no_padding()
        self._tokenizer.no_truncation()

    def __call__(self, texts: list[str]) -> list[int]:
        """Token counts of a batch of texts."""
        if not texts:
            return []
        encodings = self._tokenizer.encode_batch(texts, add_special_tokens=False)
        return [len(e.ids) for e in encodings]


class OnnxEmbedder:
    """Mean-pooled, L2-normalised sentence embeddings from the exported encoder."""

    def __init__(self, folder: Path, n_threads: Optional[int] = None):
        import onnxruntime as ort

        self.config = json.loads((folder / "encoder.json").read_text())
        self.name: str = self.config["name"]
        self.dim: int = int(self.config["dim"])
        self._tokenizer = load_tokenizer(folder / "tokenizer.json", int(self.config["max_seq_length"]))
        options = ort.SessionOptions()
        options.intra_op_num_threads = n_threads or _available_cpus()
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        # idle worker threads sleep instead of spinning: a search runs BM25 on another thread
        # meanwhile and the server's llama.cpp threads share the cores (on 2 busy cores a
        # one-query encode took 28 ms spinning, 14 ms not; batch throughput did not drop)
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self._session = ort.InferenceSession(str(folder / "model.onnx"), options,
                                                 providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own untyped errors for bad files
            raise EncoderError(f"could not load {folder / 'model.onnx'}: {exc}") from exc
        self._inputs = {i.name for i in self._session.get_inputs()}

    @classmethod
    def for_settings(cls, settings: Settings, encoder: str = DEFAULT_ENCODER,
                     n_threads: Optional[int] = None) -> "OnnxEmbedder":
        """The named encoder, exported on first use."""
        return cls(ensure_onnx(settings, ENCODERS[encoder]), n_threads)

    def encode(self, texts: list[str], batch_size: int = 32) -> np.ndarray:
        """Vectors (float32, shape ``(len(texts), dim)``, unit length) in input order.
        Texts are batched by length so padding stays small."""
        if self.config.get("quantization"):
            # dynamic int8 quantizes activations with one scale per run, so a text's vector
            # would depend on the texts (and padding) beside it; one text per run keeps it
            # its own, and was faster anyway (39 texts/s against 28 in batches of 32)
            batch_size = 1
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        for start in range(0, len(order), batch_size):
            batch = order[start:start + batch_size]
            out[batch] = self._encode_batch([texts[i] for i in batch])
        return out

    def count_tokens(self, texts: list[str]) -> int:
        """Tokens the encoder reads for ``texts`` (special tokens included, truncated at
        the encoder's limit): the ``usage`` of an embeddings request."""
        return sum(len(e.ids) for e in self._tokenizer.encode_batch(texts)) if texts else 0

    def _encode_batch(self, texts: list[str]) -> np.ndarray:
        encodings = self._tokenizer.encode_batch(texts)
        width = max(len(e.ids) for e in encodings)
        ids = np.zeros((len(texts), width), dtype=np.int64)
        mask = np.zeros_like(ids)
        for row, encoding in enumerate(encodings):
            ids[row, :len(encoding.ids)] = encoding.ids
            mask[row, :len(encoding.ids)] = 1
        feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        hidden = self._session.run(None, {k: v for k, v in feeds.items() if k in self._inputs})[0]
        weights = mask[..., None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return pooled / np.clip(norms, 1e-12, None)


def _available_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1
