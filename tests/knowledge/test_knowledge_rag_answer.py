"""End to end in process: retrieve from real notes, build the RAG prompt, and the real
default model (SmolLM2-135M) answers from the right passage, with the right sources."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from assistant.knowledge.base import KnowledgeBase
from assistant.knowledge.indexer import Indexer
from assistant.knowledge.rag_prompt import build_rag_messages
from assistant.models.chat_format import ChatMessage
from assistant.models.generation import SamplingParams, TextPiece
from assistant.profiles import load_profile
from assistant.settings import Settings
from knowledge_helpers import install_encoder

EVAL_NOTES = Path(__file__).resolve().parents[2] / "benchmarks" / "knowledge" / "eval" / "notes"


@pytest.fixture(scope="module")
def indexed_eval_notes(tmp_path_factory, both_encoders_home):
    """The eval notes, copied and indexed once for the module's questions."""
    base = tmp_path_factory.mktemp("rag")
    install_encoder(both_encoders_home, base / "home")
    notes = base / "eval-notes"
    shutil.copytree(EVAL_NOTES, notes)
    settings = Settings(home=base / "home")
    Indexer(settings).run([notes])
    with KnowledgeBase.open(settings) as kb:
        yield kb, notes


QUESTIONS = [
    ("What is my dog's name?", "pets/dog.md", "Biscuit"),
    ("Which bank do I use?", "finance/bank.txt", "Triodos"),
    ("What is my car's license plate?", "car/car.md", "KX-482-LT"),
]


def test_default_model_answers_from_the_right_passage(indexed_eval_notes, engine):
    """Retrieval must put the right note first for every question; the 135M model must then
    answer from it for at least two of the three. Not all three: its greedy output depends on
    the CPU's kernels (on an AVX-512 machine it answers "Which bank do I use?" with the Bank
    of France while the passage says Triodos; on AVX2 it names Triodos)."""
    kb, notes = indexed_eval_notes
    profile = load_profile("raspberry-pi-4-4gb")  # k=3 passages of 160 tokens: the tight case
    answers = {}
    for question, note, fact in QUESTIONS:
        passages = kb.search(question, profile.rag_passages)
        messages, sources = build_rag_messages([ChatMessage("user", question)], passages,
                                               lambda text: len(engine.tokenize(text)),
                                               profile.rag_passage_tokens, engine.n_ctx - 64)
        assert sources and sources[0].path == str(notes / note), question
        assert set(sources[0].as_dict()) == {"path", "heading", "start_line", "end_line", "score"}
        assert 1 <= sources[0].start_line <= sources[0].end_line
        assert len(engine.tokenize(engine.render_chat(messages))) <= engine.n_ctx - 64
        params = SamplingParams(max_tokens=48, temperature=0.0, seed=0)
        answers[question] = "".join(e.text for e in engine.chat(messages, params) if isinstance(e, TextPiece))
    right = [q for q, _, fact in QUESTIONS if fact.lower() in answers[q].lower()]
    assert len(right) >= 2, answers


def test_without_retrieval_the_model_does_not_know(engine):
    """The control: the facts above come from the notes, not from the model."""
    params = SamplingParams(max_tokens=48, temperature=0.0, seed=0)
    answer = "".join(e.text for e in engine.chat([ChatMessage("user", "What is my car's license plate?")], params)
                     if isinstance(e, TextPiece))
    assert "KX-482-LT" not in answer
