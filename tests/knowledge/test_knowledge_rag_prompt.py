"""The RAG prompt: numbered passages, sources for exactly the passages used, per-passage
budgets, and never more tokens than the context allows (counted by the real model)."""
from __future__ import annotations

import re

from assistant.knowledge.rag_prompt import build_rag_messages
from assistant.knowledge.search import Passage
from assistant.models.chat_format import ChatMessage


def passage(n: int, text: str, score: float = 0.03) -> Passage:
    return Passage(n, f"/notes/note{n}.md", f"Heading {n}", 10 * n, 10 * n + text.count("\n"), text, score)


LONG = "\n".join(f"Line {i}: the quick brown fox jumps over the lazy dog near the river bank." for i in range(60))


def rendered_tokens(engine, messages) -> int:
    return len(engine.tokenize(engine.render_chat(messages)))


def test_passages_are_numbered_and_sources_match_them(engine):
    count = lambda text: len(engine.tokenize(text))  # noqa: E731
    passages = [passage(1, "My dentist is Dr. Raman.", 0.033), passage(2, "My car is a Honda.", 0.016)]
    question = [ChatMessage("user", "Who is my dentist?")]
    messages, sources = build_rag_messages(question, passages, count, 200, 1500)
    assert [m.role for m in messages] == ["system", "user"]
    system = messages[0].content
    assert "[1] (note1.md, Heading 1)\nMy dentist is Dr. Raman." in system
    assert "[2] (note2.md, Heading 2)\nMy car is a Honda." in system
    assert system.index("[2]") < system.index("[1]")  # the best passage last, nearest the question
    assert messages[1] == question[0]  # the question goes in exactly as asked
    assert [s.as_dict() for s in sources] == [
        {"path": "/notes/note1.md", "heading": "Heading 1", "start_line": 10, "end_line": 10, "score": 0.033},
        {"path": "/notes/note2.md", "heading": "Heading 2", "start_line": 20, "end_line": 20, "score": 0.016},
    ]


def test_each_passage_is_cut_to_its_budget_with_its_end_line(engine):
    count = lambda text: len(engine.tokenize(text))  # noqa: E731
    messages, sources = build_rag_messages([ChatMessage("user", "What did the fox do?")], [passage(1, LONG)],
                                           count, 60, 1500)
    body = messages[0].content.split("[1] (note1.md, Heading 1)\n", 1)[1]
    assert body.endswith(" ...") and count(body) <= 60
    assert sources[0].start_line == 10 and 10 < sources[0].end_line < 10 + 59


def test_never_overflows_the_context_and_drops_what_does_not_fit(engine):
    count = lambda text: len(engine.tokenize(text))  # noqa: E731
    history = [ChatMessage("system", "Be brief."), ChatMessage("user", "Hello " * 50),
               ChatMessage("assistant", "Hi."), ChatMessage("user", "What did the fox do?")]
    passages = [passage(i, LONG) for i in range(1, 6)]
    for available in (2000, 700, 400, 250):
        messages, sources = build_rag_messages(history, passages, count, 240, available)
        assert rendered_tokens(engine, messages) <= available
        markers = re.findall(r"^\[(\d+)\] \(", messages[0].content, flags=re.MULTILINE)
        assert sorted(map(int, markers)) == list(range(1, len(sources) + 1))
        assert messages[0].content.startswith("Be brief.\n\n") or not sources  # the caller's system kept
        assert [m.role for m in messages] == [m.role for m in history]  # extended, not duplicated
    few, few_sources = build_rag_messages(history, passages, count, 240, 400)
    assert 0 < len(few_sources) < 5
    none, no_sources = build_rag_messages(history, passages, count, 240, 120)
    assert none == history and no_sources == []


def test_without_passages_or_user_turn_messages_are_unchanged(engine):
    count = lambda text: len(engine.tokenize(text))  # noqa: E731
    only_system = [ChatMessage("system", "x")]
    assert build_rag_messages(only_system, [passage(1, "text")], count, 100, 1000) == (only_system, [])
    ask = [ChatMessage("user", "hi")]
    assert build_rag_messages(ask, [], count, 100, 1000) == (ask, [])
