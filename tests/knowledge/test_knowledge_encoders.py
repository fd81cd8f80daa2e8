"""The int8 encoder (the default) against fp32, and which encoder an index is searched and
extended with: its own when registered, so fp32 vectors never meet int8 query vectors;
an unknown one, or one a caller insists on, stays a mismatch error. Real encoders."""
from __future__ import annotations

import json

import numpy as np
import pytest

from assistant.knowledge.base import KnowledgeBase
from assistant.knowledge.embedder import OnnxEmbedder
from assistant.knowledge.encoders import (DEFAULT_ENCODER, ENCODERS, _copy_export, artifact_config, artifact_dir,
                                          ensure_onnx, source_dir)
from assistant.knowledge.errors import IndexMismatchError
from assistant.knowledge.indexer import Indexer
from assistant.knowledge.layout import IndexLayout
from assistant.knowledge.sources import forget_source
from assistant.knowledge.store import Store
from assistant.settings import Settings
from knowledge_helpers import parity_texts, write

FP32_ENCODER = "all-MiniLM-L6-v2"


def recorded_encoder(settings) -> str:
    store = Store(IndexLayout.for_settings(settings).database, writable=False)
    try:
        return store.get_meta("encoder_name")
    finally:
        store.close()


def test_the_default_encoder_is_int8_and_close_to_fp32(settings):
    int8, fp32 = OnnxEmbedder.for_settings(settings), OnnxEmbedder.for_settings(settings, FP32_ENCODER)
    assert int8.name == DEFAULT_ENCODER == "all-MiniLM-L6-v2-int8" and int8.config["quantization"] == "int8"
    assert "quantization" not in fp32.config  # an fp32 export from before int8 stays valid
    sizes = {name: (artifact_dir(settings, ENCODERS[name]) / "model.onnx").stat().st_size
             for name in (DEFAULT_ENCODER, FP32_ENCODER)}
    assert sizes[DEFAULT_ENCODER] < 0.3 * sizes[FP32_ENCODER]  # 23 MB against 90 MB
    texts = parity_texts()
    vectors = int8.encode(texts)
    cosine = (vectors * fp32.encode(texts)).sum(axis=1)
    # measured on an AVX2 CPU: min 0.988, mean 0.991 (per-tensor int8 scales: min 0.91)
    assert cosine.min() >= 0.98, f"worst cosine {cosine.min():.4f} on {texts[int(cosine.argmin())][:60]!r}"
    assert cosine.mean() >= 0.985
    # a text's int8 vector does not depend on the texts encoded with it
    assert np.array_equal(int8.encode([texts[3]])[0], vectors[3])


def test_a_new_index_records_the_int8_encoder(notes, settings):
    write(notes / "keys.md", "# Keys\nThe spare key is under the blue flower pot.\n")
    Indexer(settings).run([notes])
    assert recorded_encoder(settings) == DEFAULT_ENCODER
    with KnowledgeBase.open(settings) as kb:
        assert kb.spec.name == DEFAULT_ENCODER and kb.embedding_model_name == FP32_ENCODER
        assert kb.search("where is the spare key", 1)[0].path == str(notes / "keys.md")


def test_an_fp32_index_keeps_its_encoder(notes, settings):
    write(notes / "keys.md", "# Keys\nThe spare key is under the blue flower pot.\n")
    Indexer(settings, encoder=FP32_ENCODER).run([notes])  # as built before int8 was the default
    write(notes / "bike.md", "# Bike\nThe blue bike is in rack 14.\n")
    Indexer(settings).run([notes])  # extended with fp32 vectors, not refused
    assert recorded_encoder(settings) == FP32_ENCODER
    with KnowledgeBase.open(settings) as kb:
        assert kb.spec.name == FP32_ENCODER
        reference = OnnxEmbedder.for_settings(settings, FP32_ENCODER).encode(["rack 14"])[0]
        assert np.allclose(kb.embed(["rack 14"])[0], reference, atol=1e-6)  # queries in fp32 too
        assert kb.search("which rack is the bike in", 1)[0].path == str(notes / "bike.md")
    assert forget_source(settings, notes)["documents"] == 2
    assert recorded_encoder(settings) == FP32_ENCODER


def test_an_unknown_or_insisted_encoder_is_a_mismatch(notes, settings):
    write(notes / "keys.md", "# Keys\nThe spare key is under the blue flower pot.\n")
    Indexer(settings, encoder=FP32_ENCODER).run([notes])
    with pytest.raises(IndexMismatchError, match="built with all-MiniLM-L6-v2"):
        KnowledgeBase.open(settings, encoder=DEFAULT_ENCODER)
    store = Store(IndexLayout.for_settings(settings).database)
    with store.transaction():
        store.set_meta("encoder_name", "some-other-encoder")
    store.close()
    with pytest.raises(IndexMismatchError, match="some-other-encoder"):
        KnowledgeBase.open(settings)
    with pytest.raises(IndexMismatchError, match="some-other-encoder"):
        Indexer(settings).run([notes])


def test_a_new_home_copies_a_matching_export_and_never_a_stale_one(tmp_path, both_encoders_home):
    spec = ENCODERS[DEFAULT_ENCODER]
    exports = artifact_dir(Settings(home=both_encoders_home), spec).parent
    home = Settings(home=tmp_path / "home", encoder_exports=exports)
    target = ensure_onnx(home, spec)
    for name in ("model.onnx", "tokenizer.json", "encoder.json"):
        assert (target / name).read_bytes() == (exports / spec.name / name).read_bytes()
    assert not list(target.glob("*.tmp")) and not target.is_symlink()
    # An export made for other source files (its config differs) is not taken: the copy
    # refuses it, and ensure_onnx would export instead.
    stale = tmp_path / "stale" / spec.name
    stale.mkdir(parents=True)
    for name in ("model.onnx", "tokenizer.json"):
        (stale / name).write_bytes((exports / spec.name / name).read_bytes())
    wanted = artifact_config(spec, source_dir(spec))
    (stale / "encoder.json").write_text(json.dumps({**wanted, "source_fingerprint": "0" * 16}))
    other = tmp_path / "other" / spec.name
    assert _copy_export(stale.parent, spec, other, wanted) is False and not other.exists()
    assert _copy_export(exports, spec, other, wanted) is True
    assert json.loads((other / "encoder.json").read_text()) == wanted
