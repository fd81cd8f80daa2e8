"""How hard a request is, for the router: ``general`` (needs no personal data), ``easy``
(about a note itself: its title, folder or category; or a label, preference or style),
``moderate`` (recall of one fact from the notes), ``hard`` (synthesis across notes:
summaries, comparisons, multi-part asks, and facts that changed over time, where an
older and a newer note disagree).

Deterministic and explainable, in two steps:

1. *Personal or general?* From how well the notes match the request (the cosine of the
   best vector neighbour, which the search the orchestrator already ran gives for free)
   and how personal its wording is: a request about a note, or in the first person
   singular, needs only a weak match; "we/our" a middling one ("our solar system" is not
   about the household); a request with neither needs a strong one. Without an index,
   the wording alone decides.
2. *How hard, if personal?* Word cues for a note's labels, synthesis (summaries,
   comparisons, lists), change over time ("now", "this year", "at the moment") and
   several questions in one.

The thresholds were set on the router evaluation set's dev split
(``benchmarks/router/bench_estimator.py``), for the default encoder family
(all-MiniLM-L6-v2, int8 or fp32); the test split scores them. Pure Python, a few regular
expressions: well under a millisecond per request.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

LEVELS = ("general", "easy", "moderate", "hard")

# RRF scores are rank-based (search.RRF_K = 60): 1/61 for a first rank in one retriever,
# 2/61 when vectors and BM25 both rank a passage first. "Agreed" means both retrievers put
# the top passage in their first three. Used only when no cosine is known.
AGREED_TOP_SCORE = 2.0 / (60 + 3)
# Cosine of the best vector neighbour needed to call a request personal, by its wording
# (set on the dev split: its general questions reach at most 0.37, its personal ones
# mostly 0.40-0.75).
MATCH_ANY_WORDING = 0.40  # no personal wording at all
MATCH_COLLECTIVE = 0.32  # "we / us / our" only
MATCH_FIRST_PERSON = 0.22  # "I / me / my" or a note named
LONG_REQUEST_WORDS = 40  # a request this long usually asks several things at once
FOLLOW_UP_WORDS = 6  # a follow-up this short leans on the turn before it

_FIRST_PERSON = re.compile(r"\b(i|me|my|mine|myself|i'm|i've|i'd|i'll)\b", re.I)
_COLLECTIVE = re.compile(r"\b(we|us|our|ours|ourselves|we're|we've|we'd)\b", re.I)
_MY_NOTES = re.compile(r"\b(my|our) (own )?notes?\b", re.I)
_ABOUT_A_NOTE = re.compile(r"\b(notes?|folders?|titled?|filed?|jotted|wrote down|written down)\b", re.I)
# Questions about a note itself: its title, folder or category.
_LABEL = re.compile(
    r"\b(titled?|what did i (call|name)|name of (my|the|that|this) note|folders?|filed|file\b.*\bunder|"
    r"categor(y|ies|ise|ize|ised|ized)|tagged|classify|labelled|which (of my )?notes?)\b", re.I)
# Preferences and style: what the adapter learns of the person.
_PREFERENCE = re.compile(
    r"\b(prefer(ence|red|s)?|like best|favou?rite|style|tone|rewrite|reword|rephrase|in my words)\b", re.I)
_SYNTHESIS = re.compile(
    r"\b(summar(y|ies|ise|ize|ising|izing)|overview|outline|recap|timeline|compare|comparison|contrast|"
    r"differences?|differ|versus|vs\.?|pros and cons|across|everything|all (of )?(my|our|the)|"
    r"list (all|every|the)|in total|altogether|how many times|both|which of (the|my|our|these|those)|"
    r"by how much|best and|worst|improved|between .+ and|what (did i|did we|has|have) chang\w*|"
    r"(more|less|cheaper|dearer|bigger|smaller|better|worse|higher|lower|longer|shorter|faster|slower|"
    r"older|younger|earlier|later) .*\bor\b)\b", re.I)
_CHANGED = re.compile(
    r"\b(now|nowadays|these days|at the moment|at present|currently|current|this year('s)?|latest|"
    r"most recent|so far|any ?more|still|settled?( on)?|ended up|in the end|final(ly)?|best time|"
    r"from (january|february|march|april|may|june|july|august|september|october|november|december))\b", re.I)
_LIST = re.compile(r"^\s*(what|which)\s+[a-z]+s\s+(am|is|are|do|did|does|have|has|were|was)\b", re.I)
_SECOND_QUESTION = re.compile(r"(,|;|\band)\s+(and\s+)?(what|when|where|who|whom|which|how|is|are|does|did)\b",
                              re.I)
_QUESTION_WORD = re.compile(r"^\s*(what|when|where|who|whom|which|how|why|is|are|do|does|did|can|could)\b", re.I)
_CONTINUATION = re.compile(r"^\s*(and|also|what about|how about|then|so)\b", re.I)
_WORD = re.compile(r"\w+")


@dataclass(frozen=True)
class RetrievalSignal:
    """How well the notes match the request, from the search's passages."""

    top_score: float = 0.0
    margin: float = 0.0  # top score minus the second one
    distinct_notes: int = 0  # different notes among the passages
    passages: int = 0
    both_retrievers_agree: bool = False  # the top passage is in both rankings' first three
    top_similarity: Optional[float] = None  # best cosine among the passages (None: not known)

    @classmethod
    def from_passages(cls, passages: Sequence) -> "RetrievalSignal":
        """The signal of a ``KnowledgeBase.search`` result (objects with .score, .path, ranks
        and, when the search knows it, .similarity)."""
        if not passages:
            return cls()
        scores = [p.score for p in passages]
        top = passages[0]
        agree = bool(getattr(top, "vector_rank", None) and getattr(top, "lexical_rank", None)
                     and top.vector_rank <= 3 and top.lexical_rank <= 3)
        cosines = [p.similarity for p in passages if getattr(p, "similarity", None) is not None]
        return cls(top_score=scores[0], margin=scores[0] - (scores[1] if len(scores) > 1 else 0.0),
                   distinct_notes=len({Path(p.path).as_posix() for p in passages}), passages=len(passages),
                   both_retrievers_agree=agree, top_similarity=max(cosines) if cosines else None)

    @property
    def confident(self) -> bool:
        """The notes clearly hold something on this request."""
        if self.top_similarity is not None:
            return self.top_similarity >= MATCH_ANY_WORDING
        return self.both_retrievers_agree or self.top_score >= AGREED_TOP_SCORE

    def matches(self, threshold: float) -> bool:
        """The best passage is at least this close to the request (rank-based when no cosine is known)."""
        if self.top_similarity is not None:
            return self.top_similarity >= threshold
        return self.confident

    def describe(self) -> str:
        cosine = f"best cosine {self.top_similarity:.2f}, " if self.top_similarity is not None else ""
        return (f"retrieval {cosine}top {self.top_score:.4f}, margin {self.margin:.4f}, "
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


def _personal(text: str, signal: Optional[RetrievalSignal]) -> tuple[bool, str]:
    """Whether the request needs the person's notes, and why (step 1 of the module docstring)."""
    named = _MY_NOTES.search(text)
    if named:  # "summarise my notes on work" may match no single passage well, yet it is personal
        return True, f"names the notes: '{named.group(0)}'"
    wording, threshold = "no personal wording", MATCH_ANY_WORDING
    if _ABOUT_A_NOTE.search(text) or _FIRST_PERSON.search(text):
        wording, threshold = "first-person or notes wording", MATCH_FIRST_PERSON
    elif _COLLECTIVE.search(text):
        wording, threshold = "'we/our' wording", MATCH_COLLECTIVE
    if signal is None:
        return threshold != MATCH_ANY_WORDING, f"{wording} (no notes to match)"
    if signal.matches(threshold):
        return True, f"{wording}, and the notes match it (needs {threshold:.2f})"
    return False, f"{wording}, and the notes match it weakly (needs {threshold:.2f})"


def estimate_difficulty(query: Query, signal: Optional[RetrievalSignal] = None) -> Difficulty:
    """The level of the conversation's last request (see the module docstring)."""
    text, turns = query.text, query.turns
    reasons: list[str] = []
    if query.follow_up:
        reasons.append("short follow-up: read with the previous turn")
    if signal is not None:
        reasons.append(signal.describe())
    if not text.strip():
        return Difficulty("general", reasons + ["no user text"], signal)
    personal, why = _personal(text, signal)
    reasons.append(why)
    if not personal:
        return Difficulty("general", reasons, signal)
    label = _LABEL.search(text)
    if label:
        return Difficulty("easy", reasons + [f"about a note's label: '{label.group(0)}'"], signal)
    for cue, what in ((_SYNTHESIS, "synthesis wording"), (_CHANGED, "asks for the latest of something that changed"),
                      (_LIST, "asks for a list")):
        found = cue.search(text)
        if found:
            return Difficulty("hard", reasons + [f"{what} '{found.group(0).strip()}'"], signal)
    questions = text.count("?")
    if questions >= 2 and turns <= 1:
        return Difficulty("hard", reasons + [f"{questions} questions in one request"], signal)
    second = _SECOND_QUESTION.search(text)
    if second and turns <= 1:
        return Difficulty("hard", reasons + [f"two questions in one: '{second.group(0).strip()}'"], signal)
    words = _WORD.findall(text)
    if len(words) > LONG_REQUEST_WORDS:
        return Difficulty("hard", reasons + [f"long request ({len(words)} words)"], signal)
    preference = _PREFERENCE.search(text)
    if preference:
        return Difficulty("easy", reasons + [f"preference/style wording '{preference.group(0)}'"], signal)
    form = "a question" if _QUESTION_WORD.match(text) or questions else "a request"
    return Difficulty("moderate", reasons + [f"{form} about a specific personal fact"], signal)
