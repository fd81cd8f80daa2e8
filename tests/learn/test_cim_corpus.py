"""Calibration and evaluation text for the CIM chip: offline, at least 20k tokens, split by document."""
from __future__ import annotations

from assistant.learn.cim_corpus import (
    TextDocument, corpus_for, part_of, shipped_documents, split_documents, token_windows,
)
from assistant.settings import Settings


def test_shipped_text_is_large_enough_and_split_by_document(hf_smollm):
    _, tokenizer = hf_smollm
    parts = split_documents(shipped_documents())
    names = {part: {d.name for d in docs} for part, docs in parts.items()}
    assert not names["calibration"] & names["evaluation"] and not names["validation"] & names["evaluation"]
    assert not names["calibration"] & names["validation"]
    assert sum(len(v) for v in names.values()) == len(shipped_documents())
    tokens = {part: sum(len(tokenizer(d.text).input_ids) for d in docs) for part, docs in parts.items()}
    assert tokens["evaluation"] >= 20_000 and tokens["calibration"] >= 20_000, tokens


def test_the_split_is_stable_when_documents_are_added():
    documents = [TextDocument(f"doc{i}", "x") for i in range(40)]
    before = {d.name: part_of(d.name) for d in documents}
    more = split_documents(documents + [TextDocument("new", "y")])
    after = {d.name: part for part, docs in more.items() for d in docs}
    assert all(after[name] == part for name, part in before.items())


def test_calibration_comes_from_the_notes_when_there_are_any(learn_home, tmp_path):
    notes = corpus_for(learn_home)
    assert notes.source == "notes" and all(d.name.startswith("note:") for d in notes.calibration + notes.validation)
    assert all(d.name.startswith("pydoc:") for d in notes.evaluation)
    empty = corpus_for(Settings(home=tmp_path))
    assert empty.source == "shipped" and {d.name for d in empty.calibration}.isdisjoint(d.name for d in empty.evaluation)


def test_token_windows_never_span_two_documents(hf_smollm):
    _, tokenizer = hf_smollm
    documents = [TextDocument("a", "one two three " * 20), TextDocument("b", "four five six " * 20)]
    windows = token_windows(tokenizer, documents, length=16, limit=100)
    first = list(tokenizer(documents[0].text, add_special_tokens=False).input_ids)
    assert windows[0] == first[:16] and all(len(w) == 16 for w in windows)
    assert len(windows) == len(first) // 16 + len(tokenizer(documents[1].text, add_special_tokens=False).input_ids) // 16
    assert len(token_windows(tokenizer, documents, length=16, limit=3)) == 3
