"""How hard a request is, for the router: ``general`` (needs no personal data), ``easy``
(a label, category, preference or style), ``moderate`` (recall of one fact from the
notes), ``hard`` (synthesis across notes: summaries, comparisons, multi-part asks).

Deterministic and explainable: word cues, the request's form and length, the conversation
(a short follow-up inherits the previous turn) and the confidence of the retrieval the
orchestrator already ran (top fused score, margin, distinct notes). Pure Python, a few
regular expressions: well under a millisecond per request.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

LEVELS = ("general", "easy", "moderate", "hard")

# RRF scores are rank-based (search.RRF_K = 60): 1/61 for a first rank in one retriever,
# 2/61 when vectors and BM25 both rank a passage first. "Agreed" means both retrievers put
# the top passage in their first three.
AGREED_TOP_SCORE = 2.0 / (60 + 3)
LONG_REQUEST_WORDS = 40  # a request this long usually asks several things at once
FOLLOW_UP_WORDS = 6  # a follow-up this short leans on the turn before it

_PERSONAL = re.compile(r"\b(i|me|my|mine|myself|we|us|our|ours|i'm|i've|i'd|notes?)\b", re.I)
_HARD = re.compile(
    r"\b(summar(y|ise|ize|ising|izing)|overview|compare|comparison|contrast|differences?|"
    r"versus|vs\.?|pros and cons|across|everything|all (of )?my|list (all|every)|in total|altogether|"
    r"timeline|recap|both)\b", re.I)
_EASY = re.compile(
    r"\b(categor(y|ies|ise|ize)|classify|label|folder|which (kind|type|topic)|what (kind|type|topic)|"
    r"prefer(ence|red|s)?|like best|style|tone|rewrite|phrase|reword|in my words|"
    r"yes or no|is it a|which note|which of my notes)\b", re.I)
_QUESTION_WORD = re.compile(r"^\s*(what|when|where|who|whom|which|how|why|is|are|do|does|did|can|could)\b", re.I)
_CONTINUATION = re.compile(r"^\s*(and|also|what about|how about|then|so)\b", re.I)
_WORD = re.compile(r"\w+")


@dataclass(frozen=True)
class RetrievalSignal:
    """How confidently the notes answer the request, from the fused ranking."""

    top_score: float = 0.0
    margin: float = 0.0  # top score minus the second one
    distinct_notes: int = 0  # different notes among the passages
    passages: int = 0
    both_retrievers_agree: bool = False  # the top passage is in both rankings' first three

    @classmethod
    def from_passages(cls, passages: Sequence) -> "RetrievalSignal":
        """The signal of a ``KnowledgeBase.search`` result (objects with .score, .path and ranks)."""
        if not passages:
            return cls()
        scores = [p.score for p in passages]
        top = passages[0]
        agree = bool(getattr(top, "vector_rank", None) and getattr(top, "lexical_rank", None)
                     and top.vector_rank <= 3 and top.lexical_rank <= 3)
        return cls(top_score=scores[0], margin=scores[0] - (scores[1] if len(scores) > 1 else 0.0),
                   distinct_notes=len({Path(p.path).as_posix() for p in passages}), passages=len(passages),
                   both_retrievers_agree=agree)

    @property
    def confident(self) -> bool:
        """The notes clearly hold something on this request."""
        return self.both_retrievers_agree or self.top_score >= AGREED_TOP_SCORE

    def describe(self) -> str:
        return (f"retrieval top {self.top_score:.4f}, margin {self.margin:.4f}, "
                f"{self.distinct_notes} notes{', retrievers agree' if self.both_retrievers_agree else ''}")


@dataclass(frozen=True)
class Difficulty:
    """A level and why."""

    level: str
    reasons: list[str] = field(default_factory=list)
    signal: Optional[RetrievalSignal] = None


@dataclass(frozen=True)
class Query:
    """What a conversation asks now, computed once per request: the difficulty reads it,
    retrieval searches it. A short follow-up ("And the rent?") carries the previous user
    turn's words, since alone it names nothing to search for."""

    text: str
    turns: int  # user turns in the conversation
    follow_up: bool = False  # ``text`` includes the previous user turn

    @classmethod
    def of(cls, messages: Sequence) -> "Query":
        """The query of a conversation (objects with ``.role`` and ``.content``)."""
        users = [m.content for m in messages if getattr(m, "role", None) == "user" and m.content]
        if not users:
            return cls("", 0)
        last = users[-1]
        if len(users) > 1 and (len(_WORD.findall(last)) <= FOLLOW_UP_WORDS or _CONTINUATION.match(last)):
            return cls(f"{users[-2]} {last}", len(users), follow_up=True)
        return cls(last, len(users))


def estimate_difficulty(query: Query, signal: Optional[RetrievalSignal] = None) -> Difficulty:
    """The level of the conversation's last request (see the module docstring)."""
    text, turns = query.text, query.turns
    reasons: list[str] = []
    if query.follow_up:
        reasons.append("short follow-up: read with the previous turn")
    words = _WORD.findall(text)
    personal = _PERSONAL.search(text)
    confident = signal is not None and signal.confident
    if signal is not None:
        reasons.append(signal.describe())
    if not text.strip():
        return Difficulty("general", reasons + ["no user text"], signal)
    if not personal and not confident:
        why = "no first-person or notes wording"
        why += ", and the notes match weakly" if signal is not None else ""
        return Difficulty("general", reasons + [why], signal)
    if not personal:
        reasons.append("no first-person wording, but the notes match it confidently")
    hard_cue = _HARD.search(text)
    questions = text.count("?")
    if hard_cue:
        return Difficulty("hard", reasons + [f"synthesis wording '{hard_cue.group(0)}'"], signal)
    if questions >= 2 and turns <= 1:
        return Difficulty("hard", reasons + [f"{questions} questions in one request"], signal)
    if len(words) > LONG_REQUEST_WORDS:
        return Difficulty("hard", reasons + [f"long request ({len(words)} words)"], signal)
    easy_cue = _EASY.search(text)
    if easy_cue:
        return Difficulty("easy", reasons + [f"label/preference wording '{easy_cue.group(0)}'"], signal)
    form = "a question" if _QUESTION_WORD.match(text) or questions else "a request"
    return Difficulty("moderate", reasons + [f"{form} about a specific personal fact"], signal)
