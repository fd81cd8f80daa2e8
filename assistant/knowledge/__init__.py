"""Personal knowledge: ingest notes into chunks, store them in SQLite (+FTS5) with
embeddings in hnswlib, and retrieve passages by hybrid search.

Importing this package is cheap: submodules load onnxruntime, tokenizers or hnswlib only
when they are used, and nothing here ever imports torch except ``onnx_export`` (run in a
subprocess).
"""
