"""Listing the indexed folders (``assistant sources``) and forgetting one
(``assistant forget PATH``)."""
from __future__ import annotations

from pathlib import Path

from assistant.knowledge.chunker import ChunkerConfig
from assistant.knowledge.errors import SourceNotFoundError
from assistant.knowledge.layout import IndexLayout
from assistant.knowledge.store import Store
from assistant.knowledge.writer import IndexWriter
from assistant.settings import Settings


def list_sources(settings: Settings) -> list[dict]:
    """Every indexed folder or file: path, documents, skipped, chunks, indexed_at (epoch s)."""
    layout = IndexLayout.for_settings(settings)
    if not layout.database.is_file():
        return []
    store = Store(layout.database, writable=False)
    try:
        return store.sources()
    finally:
        store.close()


def forget_source(settings: Settings, path: Path | str) -> dict:
    """Remove a source and its documents from SQLite, FTS and the vector index (files still
    covered by another source stay). Returns what was removed."""
    layout = IndexLayout.for_settings(settings)
    root = str(Path(path).expanduser().resolve())
    if not layout.database.is_file():
        raise SourceNotFoundError(f"{root} is not indexed (the index is empty)", param="path")
    with IndexWriter(layout, None, ChunkerConfig()) as writer:
        roots = writer.store.source_paths()
        if root not in roots:
            known = ", ".join(roots) or "none"
            raise SourceNotFoundError(f"{root} is not an indexed source (sources: {known})", param="path")
        others = [other for other in roots if other != root]
        writer.begin()
        documents = chunks = 0
        for doc_path, row in writer.store.documents_under(root).items():
            if any(_is_under(doc_path, other) for other in others):
                continue
            chunks += writer.remove_document(row.id)
            documents += 1
        writer.store.remove_source(root)
        writer.commit()
    return {"path": root, "documents": documents, "chunks": chunks}


def _is_under(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")
