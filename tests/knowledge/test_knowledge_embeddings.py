"""The ONNX encoder: parity with sentence-transformers (this test imports torch; serving
never does), ``KnowledgeBase.embed``, and a serving-like process that stays torch-free."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np

from assistant.knowledge.base import KnowledgeBase
from assistant.knowledge.embedder import OnnxEmbedder
from assistant.knowledge.encoders import DEFAULT_ENCODER, ENCODERS, source_dir
from knowledge_helpers import parity_texts

FP32_ENCODER = "all-MiniLM-L6-v2"


def test_onnx_matches_sentence_transformers_on_100_texts(settings):
    from sentence_transformers import SentenceTransformer

    texts = parity_texts()
    reference = SentenceTransformer(str(source_dir(ENCODERS[DEFAULT_ENCODER])), device="cpu").encode(
        texts, normalize_embeddings=True, batch_size=16)
    ours = OnnxEmbedder.for_settings(settings, FP32_ENCODER).encode(texts)  # the export itself, unquantized
    cosine = (ours * reference).sum(axis=1) / (np.linalg.norm(ours, axis=1) * np.linalg.norm(reference, axis=1))
    assert ours.shape == (100, 384)
    assert cosine.min() >= 0.999, f"worst cosine {cosine.min():.5f} on {texts[int(cosine.argmin())][:60]!r}"


def test_embed_returns_unit_vectors_in_input_order(settings):
    with KnowledgeBase.open(settings) as kb:
        assert kb.embedding_model_name == "all-MiniLM-L6-v2"
        vectors = np.array(kb.embed(["my dog Biscuit", "a beagle named Biscuit", "tax return deadline"]))
        assert kb.embed([]) == []
        assert kb.count_embedding_tokens(["my dog Biscuit"]) == 6  # [CLS] my dog bis ##cuit [SEP]
    assert vectors.shape == (3, 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2]


SERVING = """
import json, sys
from assistant.settings import Settings
from assistant.knowledge.base import KnowledgeBase
from assistant.knowledge.indexer import Indexer
Indexer(Settings()).run([sys.argv[1]])
kb = KnowledgeBase.open(Settings())
hits = kb.search("where is the spare key", 1)
kb.embed(["hello"])
print(json.dumps({"torch": "torch" in sys.modules, "st": "sentence_transformers" in sys.modules,
                  "top": hits[0].path}))
"""


def test_indexing_and_serving_never_import_torch(notes, settings):
    (notes / "keys.md").write_text("# Keys\nThe spare key is under the blue flower pot.\n")
    env = {**os.environ, "ASSISTANT_HOME": str(settings.home)}
    done = subprocess.run([sys.executable, "-c", SERVING, str(notes)], env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result == {"torch": False, "st": False, "top": str(notes / "keys.md")}
