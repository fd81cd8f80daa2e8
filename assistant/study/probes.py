"""Probes built from the person's own notes, one kind per difficulty level, and how an
answer to each is scored (deterministic, no model in the loop):

- ``moderate``: a fact question whose answer is a span of a note (a number, a date, a
  name), asked by the note's title and the key words of the sentence that holds it (not
  the sentence itself); scored 1 if the span appears;
- ``easy``: a label question (which note a section heading belongs to); scored 1 if the
  note's title appears;
- ``hard``: a summary of a whole note; scored by the share of the note's key words the
  answer covers;
- ``general``: a few fixed questions that need no notes at all.
"""
from __future__ import annotations

import random
import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from assistant.learn.data import NoteChunk

_SPAN = re.compile(r"\b(\d[\d:.,/-]*\d|\d+|[A-Z][a-z]+(?:[ -][A-Z][\w-]+)+|[A-Z]{2,}[\w-]*)\b")
_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+")
_WORD = re.compile(r"[a-z0-9]+")
_STOP = frozenset("the and for with that this from have has are was were your you they them their there "
                  "then than what when where which who will would into onto over under about every each "
                  "note notes also just only some more most very been being".split())
SUMMARY_KEYWORDS = 12
FACT_KEYWORDS = 4  # key words of the sentence a fact probe asks about

GENERAL_PROBES = [
    ("What is the capital of France?", ("paris",)),
    ("How many days are there in a week?", ("seven", "7")),
    ("What colour is the sky on a clear day?", ("blue",)),
    ("What is the opposite of hot?", ("cold",)),
    ("How many legs does a spider have?", ("eight", "8")),
    ("What is the largest organ of the human body?", ("skin",)),
    ("What is 9 times 7?", ("63",)),
    ("How many strings does a violin have?", ("four", "4")),
    ("What do bees make?", ("honey",)),
    ("How many minutes are in two hours?", ("120",)),
    ("What is 12 squared?", ("144",)),
    ("Which animal is the tallest in the world?", ("giraffe",)),
    ("What is the square root of 81?", ("nine", "9")),
    ("Which bird is a symbol of peace?", ("dove",)),
    ("What language is mostly spoken in Spain?", ("spanish",)),
]


@dataclass(frozen=True)
class Probe:
    """A question at a known level with what a right answer contains."""

    level: str
    question: str
    expected: tuple[str, ...]  # any of these (span, label) or key words (summary)
    kind: str  # span | label | overlap
    path: str = ""


def normalise(text: str) -> str:
    return " ".join(_WORD.findall(text.lower()))


def score(probe: Probe, answer: str) -> float:
    """1/0 for spans and labels; the share of key words covered for summaries."""
    said = normalise(answer)
    if probe.kind == "overlap":
        words = set(said.split())
        return sum(1 for w in probe.expected if w in words) / max(len(probe.expected), 1)
    return 1.0 if any(normalise(e) and f" {normalise(e)} " in f" {said} " for e in probe.expected) else 0.0


def _title(path: str) -> str:
    return Path(path).stem.replace("-", " ").replace("_", " ")


def _fact_probes(chunks: Sequence[NoteChunk]) -> list[Probe]:
    """A fact question per chunk, paraphrased: it names the note and the sentence's key words
    (not the sentence itself, so a lexical match is not handed over) and expects the
    sentence's longest number, date or name."""
    probes = []
    for chunk in chunks:
        for sentence in _SENTENCE.split(chunk.text):
            sentence = sentence.strip().lstrip("#*- ").strip()
            spans = [m for m in _SPAN.finditer(sentence) if m.start() > 0]
            if len(sentence) < 20 or not spans:
                continue
            span = max(spans, key=lambda m: len(m.group(0)))
            answer_words = set(_WORD.findall(span.group(0).lower()))
            keywords = [w for w in dict.fromkeys(_WORD.findall(sentence.lower()))
                        if len(w) > 2 and w not in _STOP and w not in answer_words and not w.isdigit()][:FACT_KEYWORDS]
            if not keywords:
                continue
            probes.append(Probe("moderate", f"What do my notes on {_title(chunk.path)} say about "
                                            f"{', '.join(keywords)}?", (span.group(0),), "span", chunk.path))
            break  # one per chunk: spread the probes over notes
    return probes


def _label_probes(chunks: Sequence[NoteChunk]) -> list[Probe]:
    """Which note a section belongs to: the label is the note's title (file name or top
    heading), which both the adapter's training text and the RAG passage header carry."""
    probes, seen = [], set()
    for chunk in chunks:
        parts = [p.strip() for p in chunk.heading.split(" > ")] if chunk.heading else []
        if len(parts) < 2 or parts[-1].lower() in seen:
            continue
        seen.add(parts[-1].lower())
        labels = tuple(dict.fromkeys([_title(chunk.path), parts[0]]))
        probes.append(Probe("easy", f'Which note of mine has the section "{parts[-1]}"? Answer with its title.',
                            labels, "label", chunk.path))
    return probes


def _summary_probes(chunks: Sequence[NoteChunk]) -> list[Probe]:
    by_path: dict[str, list[str]] = defaultdict(list)
    for chunk in chunks:
        by_path[chunk.path].append(chunk.text)
    probes = []
    for path, texts in by_path.items():
        words = [w for w in _WORD.findall(" ".join(texts).lower()) if len(w) > 3 and w not in _STOP]
        keywords = tuple(dict.fromkeys(words))[:SUMMARY_KEYWORDS]
        if len(keywords) >= 4:
            probes.append(Probe("hard", f"Summarize my notes on {_title(path)}.", keywords, "overlap", path))
    return probes


def build_probes(chunks: Sequence[NoteChunk], per_level: int, seed: int = 0,
                 levels: Sequence[str] = ("general", "easy", "moderate", "hard")) -> list[Probe]:
    """Up to ``per_level`` probes at each level, sampled reproducibly across notes."""
    rng = random.Random(seed)
    pools = {"general": [Probe("general", q, e, "span") for q, e in GENERAL_PROBES],
             "easy": _label_probes(chunks), "moderate": _fact_probes(chunks), "hard": _summary_probes(chunks)}
    probes = []
    for level in levels:
        pool = pools[level]
        probes += pool if level == "general" and len(pool) <= per_level else rng.sample(pool, min(per_level, len(pool)))
    return [p for level in levels for p in probes if p.level == level][:per_level * len(levels)]
