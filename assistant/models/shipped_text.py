"""Text that ships with every Python installation, for setting and measuring a chip offline.

The Python documentation topics (``pydoc_data.topics``: 79 documents, about 465k characters)
are on every machine that runs the assistant, so a chip's ranges can be set and its quality
measured the same way everywhere, with no download. :mod:`assistant.learn.cim_corpus` splits
them by document into calibration, validation and evaluation parts.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Sequence


PARTS = ("calibration", "validation", "evaluation")


@dataclass(frozen=True)
class TextDocument:
    """One document: its name (what splits go by) and its text."""

    name: str
    text: str


def shipped_documents() -> list[TextDocument]:
    """The Python documentation topics, whitespace tidied, in name order."""
    from pydoc_data.topics import topics

    return [TextDocument(f"pydoc:{name}", re.sub(r"[ \t]+", " ", text).strip()) for name, text in sorted(topics.items())]


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


def range_windows(tokenizer, length: int = 64, count: int = 4) -> list[list[int]]:
    """Windows of the shipped calibration part that a chip's DAC and ADC ranges are set on
    (never the evaluation part, which measures the chip)."""
    return token_windows(tokenizer, split_documents(shipped_documents())["calibration"], length, count)
