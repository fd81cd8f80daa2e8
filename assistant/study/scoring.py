"""How an answer is scored against an evaluation question (issue 14, step 2), the same
rule for every strategy:

- short answers (``answers``: any acceptable string is enough): 1 if one of them, after
  normalisation, appears on word boundaries in the normalised answer, else 0;
- summaries and comparisons (``key_facts``: all must appear): the fraction present; the
  question counts as fully right only when all are.

Normalisation: Unicode NFKC, lower case, apostrophes dropped, every other non-alphanumeric
character a space, runs of spaces collapsed (so "£1,287" is found in "1,287 pounds" and
"5 mg" is not found in "15 mg"). The caller limits the answer to its first 48 generated
tokens for short answers (``SHORT_ANSWER_TOKENS``).
"""
from __future__ import annotations

import re
import unicodedata
from typing import Optional, Sequence

SHORT_ANSWER_TOKENS = 48  # short answers are read from this many generated tokens
KEY_FACT_TOKENS = 128  # summaries and comparisons need room for several facts

_APOSTROPHES = re.compile("['\u2019\u2018`]")
_NOT_WORD = re.compile(r"[^\w]+|_")


def normalise(text: str) -> str:
    """Lower case, apostrophes dropped, every other non-alphanumeric a space, spaces collapsed."""
    text = unicodedata.normalize("NFKC", text).lower()
    return " ".join(_NOT_WORD.sub(" ", _APOSTROPHES.sub("", text)).split())


def contains(text: str, phrase: str) -> bool:
    """``phrase`` appears in ``text`` on word boundaries, both normalised."""
    phrase = normalise(phrase)
    return bool(phrase) and f" {phrase} " in f" {normalise(text)} "


def score_answer(answer: str, answers: Optional[Sequence[str]] = None,
                 key_facts: Optional[Sequence[str]] = None) -> float:
    """1/0 for short answers (any acceptable string), the fraction of key facts present
    otherwise. Exactly one of ``answers`` and ``key_facts`` is given."""
    if (answers is None) == (key_facts is None):
        raise ValueError("give exactly one of answers and key_facts")
    if answers is not None:
        return 1.0 if any(contains(answer, a) for a in answers) else 0.0
    return sum(contains(answer, fact) for fact in key_facts) / len(key_facts) if key_facts else 0.0


def answer_tokens(answers: Optional[Sequence[str]]) -> int:
    """How many tokens to generate for a question: short answers are scored on the first
    48, key facts get more room."""
    return SHORT_ANSWER_TOKENS if answers is not None else KEY_FACT_TOKENS
