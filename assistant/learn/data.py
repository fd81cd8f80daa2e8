"""Training examples from the indexed notes: each chunk as note text with its title and
heading as context, a question-style item per heading, and label items whose *targets* are
a note's title, folder and category (asked about the note's topics), so an adapter learns
the person's labels, not only sees them in prompts. The validation split is held out by
document, so validation loss measures notes the adapter has not seen."""
from __future__ import annotations

import hashlib
import random
import re
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


_CATEGORY = re.compile(r"^\s*Category:\s*(.+?)\s*$", re.I | re.M)
TOPIC_WORDS = 8  # a topic is a heading or the first words of a chunk
TOPICS_PER_NOTE = 3
# Ways a person asks about a note's labels, rotated over a note's topics.
LABEL_QUESTIONS = {
    "title": ("What is the title of my note about {topic}?", "What did I call the note on {topic}?"),
    "folder": ("Which folder is my note about {topic} in?", "Where did I file the note on {topic}?"),
    "category": ("What category is my note about {topic}?", "Which category did I give the note on {topic}?"),
}


@dataclass(frozen=True)
class NoteLabels:
    """What a person filed a note as: its title (first heading, else first line), its
    folder (the directory it is in) and its ``Category:`` line, if any."""

    title: str
    folder: str
    category: str


def labels_of(chunks: list[NoteChunk]) -> NoteLabels:
    """The labels of one note from its chunks (in document order)."""
    first = chunks[0]
    title = first.heading.split(" > ")[0].strip() if first.heading else ""
    if not title:
        title = next((line.strip() for line in first.text.splitlines() if line.strip()), _title(first.path))
    found = next((m.group(1) for c in chunks for m in [_CATEGORY.search(c.text)] if m), "")
    return NoteLabels(title=title, folder=Path(first.path).parent.name, category=found)


def _topics(chunks: list[NoteChunk], title: str) -> list[str]:
    """Short descriptions of what a note is about: its section headings and first words."""
    topics = []
    for chunk in chunks:
        heading = chunk.heading.split(" > ")[-1].strip() if chunk.heading else ""
        if heading and heading.lower() != title.lower():
            topics.append(heading)
        lines = [ln.strip(" #*-|") for ln in chunk.text.splitlines()
                 if ln.strip() and not _CATEGORY.match(ln) and ln.strip() != title]
        if lines:
            topics.append(" ".join(lines[0].replace("|", " ").split()[:TOPIC_WORDS]).rstrip(" .,;:("))
    unique = list(dict.fromkeys(t for t in topics if t))
    return unique[:TOPICS_PER_NOTE] or [title]


def label_examples(chunks: list[NoteChunk]) -> list[Example]:
    """Questions about one note's labels, the labels as targets."""
    labels = labels_of(chunks)
    items = []
    for number, topic in enumerate(_topics(chunks, labels.title)):
        for kind, target in (("title", labels.title), ("folder", labels.folder), ("category", labels.category)):
            if target:
                question = LABEL_QUESTIONS[kind][number % len(LABEL_QUESTIONS[kind])].format(topic=topic)
                items.append(Example(chunks[0].path, f"Question: {question}\nAnswer: ", target))
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
    by_document: dict[str, list[NoteChunk]] = {}
    for chunk in chunks:
        by_document.setdefault(chunk.path, []).append(chunk)
    for path, document_chunks in by_document.items():
        items = [e for c in document_chunks for e in examples_for(c)] + label_examples(document_chunks)
        if path in validation_docs:
            validation.extend(items)
        elif path in keep:
            train.extend(items)
    if not validation:  # a single document: hold out its last examples instead
        validation, train = train[-max(1, len(train) // 6):], train[: -max(1, len(train) // 6)] or train
    digest = hashlib.sha256("\n".join(f"{c.path}\0{c.heading}\0{c.text}" for c in chunks).encode()).hexdigest()
    return Dataset(train=train, validation=validation, snapshot=digest[:16], documents=len(documents))
