"""Chunking: heading paths, source lines, token bounds and overlap, with the real
encoder tokenizer."""
from __future__ import annotations

import pytest

from assistant.knowledge.chunker import ChunkerConfig, chunk_lines
from assistant.knowledge.embedder import TokenCounter
from assistant.knowledge.encoders import DEFAULT_ENCODER, ENCODERS
from assistant.knowledge.parsers import FORMATS, parse_document


@pytest.fixture(scope="module")
def count():
    return TokenCounter(ENCODERS[DEFAULT_ENCODER])


def test_chunks_follow_headings_with_paths_and_lines(count):
    text = "Intro line.\n# Health\n## Dentist\nDr. Raman.\n\n## Allergies\nPenicillin.\n# Car\nBlue Honda.\n"
    chunks = chunk_lines(parse_document(FORMATS["markdown"], text.encode()), count)
    assert [(c.heading, c.start_line, c.end_line, c.text) for c in chunks] == [
        ("", 1, 1, "Intro line."),
        ("Health > Dentist", 3, 4, "Dr. Raman."),
        ("Health > Allergies", 6, 7, "Penicillin."),
        ("Car", 8, 9, "Blue Honda."),
    ]
    assert [c.ordinal for c in chunks] == [0, 1, 2, 3]


def test_long_sections_are_bounded_and_overlap(count):
    config = ChunkerConfig(max_tokens=40, overlap_tokens=12)
    body = "\n".join(f"Line {i} says something about topic number {i}." for i in range(1, 41))
    chunks = chunk_lines(parse_document(FORMATS["markdown"], f"# Log\n{body}\n".encode()), count, config)
    assert len(chunks) > 5
    for chunk in chunks:
        assert count([chunk.text])[0] <= config.max_tokens + 2  # joining newlines may merge a token
        assert chunk.heading == "Log"
    for previous, current in zip(chunks, chunks[1:]):
        assert current.start_line <= previous.end_line  # overlap: the next starts inside the last
        assert current.end_line > previous.end_line  # and always moves forward
    assert chunks[0].start_line == 1 and chunks[-1].end_line == 41
    assert "Line 40 says" in chunks[-1].text


def test_a_single_huge_line_and_unspaced_text_are_split(count):
    config = ChunkerConfig(max_tokens=32, overlap_tokens=4)
    words = " ".join(f"word{i}" for i in range(400))
    cjk = "日本語のテキストには空白がありません" * 30
    lines = parse_document(FORMATS["text"], f"{words}\n{cjk}\n".encode())
    chunks = chunk_lines(lines, count, config)
    assert len(chunks) > 10
    assert all(count([c.text])[0] <= config.max_tokens for c in chunks)
    joined = " ".join(c.text for c in chunks)
    assert "word0 " in joined and "word399" in joined
    assert {c.start_line for c in chunks} == {1, 2}
