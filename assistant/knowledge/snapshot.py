"""What other parts take from the index without opening its database themselves: the
chunks as they stand (the adapter's training data) and a consistent copy of the whole
index (the trade-off study's own home). Both read the index read-only."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from assistant.knowledge.errors import IndexNotFoundError
from assistant.knowledge.layout import IndexLayout
from assistant.knowledge.store import Store
from assistant.settings import Settings


@dataclass(frozen=True)
class IndexedChunk:
    """A chunk's text with the document it came from and its heading path."""

    path: str
    heading: str
    text: str


def indexed_chunks(settings: Settings) -> Optional[list[IndexedChunk]]:
    """Every chunk of this home's index in document order; None when nothing is indexed."""
    layout = IndexLayout.for_settings(settings)
    if not layout.database.is_file():
        return None
    store = Store(layout.database, writable=False)
    try:
        return [IndexedChunk(*row) for row in store.all_chunks()]
    finally:
        store.close()


def backup_index_to(settings: Settings, target_settings: Settings) -> None:
    """Copy this home's index database into ``target_settings``' home, consistently even
    while a personalize run writes (the vectors are rebuilt there from SQLite on first use)."""
    source = IndexLayout.for_settings(settings)
    if not source.database.is_file():
        raise IndexNotFoundError("nothing is indexed yet: run 'assistant personalize PATH' first")
    store = Store(source.database, writable=False)
    try:
        store.backup_to(IndexLayout.for_settings(target_settings).database)
    finally:
        store.close()
