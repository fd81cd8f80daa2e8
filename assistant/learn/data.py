"""Training examples from the indexed notes: each chunk as note text with its title and
heading as context, plus a question-style item per heading. The validation split is held
out by document, so validation loss measures notes the adapter has not seen."""
from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from pathlib import Path

from assistant.knowledge.snapshot import indexed_chunks
from assistant.learn.errors import NoTrainingDataError
from assistant.settings import Settings


@dataclass(frozen=True)
class NoteChunk:
    """A chunk as stored by the knowledge index."""

    path: str
    heading: str
    text: str


@dataclass(frozen=True)
class Example:
    """One training text (already in the prompt form the model will see) and its document."""

    document: str
    prompt: str  # context; its tokens are not scored
    target: str  # what the model learns to produce


@dataclass(frozen=True)
class Dataset:
    """Train/validation examples and a snapshot id of the data they came from."""

    train: list[Example]
    validation: list[Example]
    snapshot: str
    documents: int


def read_chunks(settings: Settings) -> list[NoteChunk]:
    """All chunks of this home's index, in document order (the index is only read)."""
    chunks = indexed_chunks(settings)
    if chunks is None:
        raise NoTrainingDataError("nothing is indexed yet: run 'assistant personalize PATH' first")
    return [NoteChunk(chunk.path, chunk.heading, chunk.text) for chunk in chunks]


def _title(path: str) -> str:
    return Path(path).stem.replace("-", " ").replace("_", " ")


def examples_for(chunk: NoteChunk) -> list[Example]:
    """Note text in context; and, under a heading, a question answered by the section."""
    title = _title(chunk.path)
    heading = chunk.heading.split(" > ")[-1].strip() if chunk.heading else ""
    items = [Example(chunk.path, f"Note: {title}\nSection: {chunk.heading or title}\n\n", chunk.text.strip())]
    if heading and heading.lower() != title.lower():
        items.append(Example(chunk.path, f"Question: In my notes on {title}, what is under '{heading}'?\nAnswer: ",
                             chunk.text.strip()))
    return items


def split_by_document(chunks: list[NoteChunk], fraction: float = 0.15, seed: int = 0,
                      data_fraction: float = 1.0) -> Dataset:
    """Examples with whole documents held out for validation (at least one when there are
    two or more). ``data_fraction`` keeps that share of the training documents (for the
    data-amount study)."""
    if not chunks:
        raise NoTrainingDataError("the index has no text to learn from")
    documents = sorted({c.path for c in chunks})
    rng = random.Random(seed)
    shuffled = documents[:]
    rng.shuffle(shuffled)
    n_val = max(1, round(len(documents) * fraction)) if len(documents) > 1 else 0
    validation_docs = set(shuffled[:n_val])
    train_docs = [d for d in shuffled[n_val:]]
    keep = set(train_docs[: max(1, round(len(train_docs) * data_fraction))]) if train_docs else set()
    train, validation = [], []
    for chunk in chunks:
        if chunk.path in validation_docs:
            validation.extend(examples_for(chunk))
        elif chunk.path in keep:
            train.extend(examples_for(chunk))
    if not validation:  # a single document: hold out its last examples instead
        validation, train = train[-max(1, len(train) // 6):], train[: -max(1, len(train) // 6)] or train
    digest = hashlib.sha256("\n".join(f"{c.path}\0{c.heading}\0{c.text}" for c in chunks).encode()).hexdigest()
    return Dataset(train=train, validation=validation, snapshot=digest[:16], documents=len(documents))
