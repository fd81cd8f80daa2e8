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
from dataclasses import dataclass
from typing import Sequence

from assistant.errors import InvalidRequestError
from assistant.learn.errors import NoTrainingDataError
from assistant.models.cim_tsb import CalibrationText
from assistant.models.shipped_text import (  # noqa: F401 - re-exported
    PARTS, TextDocument, part_of, shipped_documents, split_documents, token_windows)
from assistant.settings import Settings



@dataclass(frozen=True)
class CorpusSplit:
    """Documents for each use; ``source`` says where calibration text came from."""

    calibration: tuple[TextDocument, ...]
    validation: tuple[TextDocument, ...]
    evaluation: tuple[TextDocument, ...]
    source: str  # "notes" or "shipped"


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


def calibration_text(tokenizer, settings: Settings, window: int = 64, train_windows: int = 24, val_windows: int = 6,
                     seed: int = 0) -> CalibrationText:
    """Calibration and validation windows (a :class:`~assistant.models.cim_tsb.CalibrationText`):
    from the person's notes when two or more are indexed, else from the shipped
    text's calibration and validation parts (see :mod:`assistant.learn.cim_corpus`)."""
    import torch

    corpus = corpus_for(settings, seed)
    train = token_windows(tokenizer, corpus.calibration, window, train_windows)
    val = token_windows(tokenizer, corpus.validation, window, val_windows)
    if (not train or not val) and corpus.source == "notes":  # notes too short for whole windows
        shipped = split_documents(shipped_documents(), seed=seed)
        corpus = CorpusSplit(shipped["calibration"], shipped["validation"], shipped["evaluation"],
                             "shipped (the notes are too short for whole windows)")
        train = token_windows(tokenizer, corpus.calibration, window, train_windows)
        val = token_windows(tokenizer, corpus.validation, window, val_windows)
    if not train or not val:
        raise InvalidRequestError(f"not enough {corpus.source} text for {window}-token windows to calibrate on",
                                  param="corpus")
    return CalibrationText(torch.tensor(train), torch.tensor(val), corpus.source)
