"""Putting retrieved passages into a chat prompt, with numbered markers, within budget.

Tuned for small models (the 135M default) on ``benchmarks/knowledge`` (answer
containment on 44 questions, greedy): few, short passages (the edge guidelines), each
introduced by its marker and its note's name and heading, in the *system* message, with
the user's turns left exactly as asked (0.75; the same passages inside the user turn
before the question: 0.70, counted a little more loosely). The best passage goes last,
nearest the question, where a small model attends most (best first: 0.50-0.64); markers
still number passages by rank, so ``[1]`` is always the best one.
"""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Protocol

from assistant.models.chat_format import ChatMessage

# The chat template adds role markers around each message and, for some models, a default
# system prompt; content token counts do not see them, so they are reserved here.
TEMPLATE_OVERHEAD_TOKENS = 48
PER_MESSAGE_OVERHEAD_TOKENS = 8
MIN_PASSAGE_TOKENS = 24  # a passage cut shorter than this is more noise than help

INSTRUCTION = ("You answer the user's questions from the user's notes below. "
               "Answer in one short sentence with the fact from the notes.")


@dataclass(frozen=True)
class Source:
    """A passage an answer was built from: what the person needs to check it."""

    path: str  # absolute path of the note
    heading: str
    start_line: int
    end_line: int  # the last line of the text actually put in the prompt
    score: float  # fused retrieval score

    def as_dict(self) -> dict:
        """The ``sources`` item of the HTTP extension."""
        return asdict(self)


class PassageLike(Protocol):
    """What the builder needs from a retrieved passage (``search.Passage`` has it)."""

    path: str
    heading: str
    start_line: int
    end_line: int
    text: str
    score: float


def build_rag_messages(messages: list[ChatMessage], passages: list[PassageLike],
                       count_tokens: Callable[[str], int], passage_token_budget: int,
                       context_tokens_available: int) -> tuple[list[ChatMessage], list[Source]]:
    """The conversation with the passages in its system message (added, or extended if
    the conversation has one), and the ``sources`` of the passages used, in marker order
    (``sources[0]`` is ``[1]``).

    ``count_tokens`` counts the model's tokens in a string; ``context_tokens_available``
    is what the rendered prompt may use (the context minus the room kept for the answer).
    Passages are cut to ``passage_token_budget`` tokens each, and dropped or cut further
    so the prompt fits; with no room, the messages come back unchanged and sources empty.
    """
    if _last_user_index(messages) is None or not passages:
        return list(messages), []
    system_at = next((i for i, m in enumerate(messages) if m.role == "system"), None)
    used = TEMPLATE_OVERHEAD_TOKENS + sum(count_tokens(m.content) + PER_MESSAGE_OVERHEAD_TOKENS for m in messages)
    used += count_tokens(_render_system([], None)) + (PER_MESSAGE_OVERHEAD_TOKENS if system_at is None else 0)
    room = context_tokens_available - used
    chosen: list[tuple[PassageLike, str, int]] = []  # (passage, text as put in, end line)
    for passage in passages:
        label_tokens = count_tokens(_label(len(chosen) + 1, passage)) + 2
        budget = min(passage_token_budget, room - label_tokens)
        if budget < MIN_PASSAGE_TOKENS:
            break
        text, end_line = _fit(passage, budget, count_tokens)
        if not text:
            continue
        chosen.append((passage, text, end_line))
        room -= label_tokens + count_tokens(text)
    if not chosen:
        return list(messages), []
    blocks = [f"{_label(n, p)}\n{text}" for n, (p, text, _) in enumerate(chosen, start=1)]
    augmented = list(messages)
    if system_at is None:
        augmented.insert(0, ChatMessage("system", _render_system(blocks, None)))
    else:
        augmented[system_at] = ChatMessage("system", _render_system(blocks, messages[system_at].content))
    sources = [Source(p.path, p.heading, p.start_line, end_line, round(float(p.score), 6))
               for p, _, end_line in chosen]
    return augmented, sources


def _last_user_index(messages: list[ChatMessage]) -> int | None:
    for index in range(len(messages) - 1, -1, -1):
        if messages[index].role == "user":
            return index
    return None


def _label(number: int, passage: PassageLike) -> str:
    """``[2] dentist.md, Health > Dentist:`` names the note so the model can tell them apart."""
    where = Path(passage.path).name + (f", {passage.heading}" if passage.heading else "")
    return f"[{number}] ({where})"


def _render_system(blocks: list[str], original: str | None) -> str:
    """The caller's own system text (if any), the instruction, then the passages best-last."""
    notes = "\n\n".join(reversed(blocks))
    prefix = f"{original.strip()}\n\n" if original and original.strip() else ""
    return f"{prefix}{INSTRUCTION}\n\nNotes:\n{notes}"


_WORD_END = re.compile(r"\S+")


def _fit(passage: PassageLike, budget: int, count_tokens: Callable[[str], int]) -> tuple[str, int]:
    """The passage's text cut at a word boundary to at most ``budget`` tokens, and the
    source line the kept text ends on."""
    text = passage.text.strip()
    if count_tokens(text) <= budget:
        return text, passage.end_line
    ends = [match.end() for match in _WORD_END.finditer(text)]
    low, high = 0, len(ends)  # binary search: the most words whose prefix fits
    while low < high:
        middle = (low + high + 1) // 2
        if count_tokens(text[:ends[middle - 1]] + " ...") <= budget:
            low = middle
        else:
            high = middle - 1
    if low == 0:
        return "", passage.end_line
    kept = text[:ends[low - 1]]
    first_line = max(passage.start_line, passage.end_line - text.count("\n"))
    return kept + " ...", min(passage.end_line, first_line + kept.count("\n"))
