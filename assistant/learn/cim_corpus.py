"""Text for calibrating a chip's TSB and for measuring a chip, split by document.

Shipped text: the Python documentation topics every Python installation carries
(``pydoc_data.topics``: 79 documents, about 465k characters), so calibration and evaluation
work offline and the same everywhere. Documents go to calibration, validation or evaluation
by a hash of their name (stable when documents are added; never one document in two parts).
Calibration prefers the person's indexed notes when there are any: the chip is then tuned
on the kind of text it will serve, and the shipped evaluation part stays untouched by it.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Sequence

from assistant.learn.errors import NoTrainingDataError
from assistant.settings import Settings

PARTS = ("calibration", "validation", "evaluation")


@dataclass(frozen=True)
class TextDocument:
    """One document: its name (what splits go by) and its text."""

    name: str
    text: str


@dataclass(frozen=True)
class CorpusSplit:
    """Documents for each use; ``source`` says where calibration text came from."""

    calibration: tuple[TextDocument, ...]
    validation: tuple[TextDocument, ...]
    evaluation: tuple[TextDocument, ...]
    source: str  # "notes" or "shipped"


def shipped_documents() -> list[TextDocument]:
    """The Python documentation topics, whitespace tidied, in name order."""
    from pydoc_data.topics import topics

    return [TextDocument(f"pydoc:{name}", re.sub(r"[ \t]+", " ", text).strip()) for name, text in sorted(topics.items())]


def note_documents(settings: Settings) -> list[TextDocument]:
    """The indexed notes, one document per note file (empty when nothing is indexed)."""
    from assistant.learn.data import read_chunks

    try:
        chunks = read_chunks(settings)
    except NoTrainingDataError:
        return []
    by_path: dict[str, list[str]] = {}
    for chunk in chunks:
        by_path.setdefault(chunk.path, []).append(chunk.text)
    return [TextDocument(f"note:{path}", "\n\n".join(texts)) for path, texts in sorted(by_path.items())]


def part_of(name: str, weights: Sequence[float] = (0.6, 0.2, 0.2), seed: int = 0) -> str:
    """Which part a document named ``name`` belongs to (a stable hash, not its position)."""
    digest = hashlib.sha256(f"{seed}:{name}".encode()).digest()
    point = int.from_bytes(digest[:8], "big") / 2**64 * sum(weights)
    for part, weight in zip(PARTS, weights):
        if point < weight:
            return part
        point -= weight
    return PARTS[-1]


def split_documents(documents: Sequence[TextDocument], weights: Sequence[float] = (0.6, 0.2, 0.2),
                    seed: int = 0) -> dict[str, tuple[TextDocument, ...]]:
    """Documents by part; a document is in exactly one part."""
    parts: dict[str, list[TextDocument]] = {part: [] for part in PARTS}
    for document in documents:
        parts[part_of(document.name, weights, seed)].append(document)
    return {part: tuple(docs) for part, docs in parts.items()}


def corpus_for(settings: Settings, seed: int = 0) -> CorpusSplit:
    """Calibration from the notes when there are two or more (whole notes held out for
    validation), else from the shipped text; evaluation always from the
    shipped text's evaluation part, which nothing calibrates on."""
    shipped = split_documents(shipped_documents(), seed=seed)
    notes = note_documents(settings)
    if len(notes) >= 2:
        # Ordered by a hash of the name, the first fifth (at least one note) validates.
        ordered = sorted(notes, key=lambda d: hashlib.sha256(f"{seed}:{d.name}".encode()).digest())
        n_val = max(1, round(0.2 * len(ordered)))
        return CorpusSplit(tuple(ordered[n_val:]), tuple(ordered[:n_val]), shipped["evaluation"], "notes")
    return CorpusSplit(shipped["calibration"], shipped["validation"], shipped["evaluation"], "shipped")


def token_windows(tokenizer, documents: Sequence[TextDocument], length: int, limit: int) -> list[list[int]]:
    """Up to ``limit`` windows of ``length`` tokens, cut from each document in turn (a window
    never spans two documents; a document shorter than a window gives none)."""
    windows: list[list[int]] = []
    for document in documents:
        ids = list(tokenizer(document.text, add_special_tokens=False).input_ids)
        for start in range(0, len(ids) - length + 1, length):
            windows.append(ids[start:start + length])
            if len(windows) >= limit:
                return windows
    return windows
