"""Retrieval and answer quality on the eval set in ``eval/``: hit@1 / hit@k of the note
that answers each question, and how often the default model's RAG answer contains the
expected fact.

    .venv/bin/python benchmarks/knowledge/bench_retrieval.py [--quick] [--profile NAME]

Writes a JSON result (``--out``, default ``benchmarks/results/knowledge_retrieval.json``).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from assistant.knowledge.base import KnowledgeBase  # noqa: E402
from assistant.knowledge.indexer import Indexer  # noqa: E402
from assistant.knowledge.rag_prompt import build_rag_messages  # noqa: E402
from assistant.models.chat_format import ChatMessage  # noqa: E402
from assistant.models.generation import SamplingParams, TextPiece  # noqa: E402
from assistant.profiles import load_profile  # noqa: E402
from assistant.settings import Settings  # noqa: E402

EVAL = Path(__file__).resolve().parent / "eval"
ANSWER_TOKENS = 48


def load_questions(quick: bool) -> list[dict]:
    """The eval questions (every fifth one in quick mode)."""
    rows = [json.loads(line) for line in (EVAL / "questions.jsonl").read_text().splitlines() if line.strip()]
    return rows[::5] if quick else rows


def retrieval_metrics(kb: KnowledgeBase, questions: list[dict], k: int) -> dict:
    """hit@1, hit@k and MRR of the expected file among the top-k passages' files."""
    notes = (EVAL / "notes").resolve()
    hits1 = hitsk = 0
    reciprocal = 0.0
    misses = []
    for row in questions:
        files = [str(Path(p.path).relative_to(notes)) for p in kb.search(row["question"], k)]
        rank = files.index(row["file"]) + 1 if row["file"] in files else None
        hits1 += rank == 1
        hitsk += rank is not None
        reciprocal += 1.0 / rank if rank else 0.0
        if rank != 1:
            misses.append({"question": row["question"], "expected": row["file"], "got": files})
    n = len(questions)
    return {"questions": n, "k": k, "hit@1": hits1 / n, f"hit@{k}": hitsk / n, "mrr": reciprocal / n,
            "not_first": misses}


def answer(engine, kb: KnowledgeBase, question: str, profile) -> tuple[str, list[dict]]:
    """The default model's greedy RAG answer and the sources it was given."""
    passages = kb.search(question, profile.rag_passages)
    messages, sources = build_rag_messages(
        [ChatMessage("user", question)], passages, lambda text: len(engine.tokenize(text)),
        profile.rag_passage_tokens, engine.n_ctx - ANSWER_TOKENS)
    params = SamplingParams(max_tokens=ANSWER_TOKENS, temperature=0.0, seed=0)
    text = "".join(e.text for e in engine.chat(messages, params) if isinstance(e, TextPiece))
    return text.strip(), sources


def contains_fact(text: str, expected: str) -> bool:
    """Case-insensitive containment that does not let a number match inside a longer one
    ("June 3" is not in "June 30") nor a word start inside another word; word
    endings stay allowed ("Tuesday" in "Tuesdays", "September 12" in "September 12th")."""
    start = r"(?<!\w)" if expected[:1].isalnum() else ""
    end = r"(?!\d)" if expected[-1:].isdigit() else ""
    return re.search(start + re.escape(expected.lower()) + end, text.lower()) is not None


def answer_metrics(kb: KnowledgeBase, questions: list[dict], settings: Settings, profile) -> dict:
    """Share of answers that contain an expected fact (``contains_fact``)."""
    from assistant.models.catalog import resolve_model
    from assistant.models.engine import Engine

    engine = Engine(resolve_model("default", settings), n_ctx=2048, n_threads=2)
    contained = 0
    rows = []
    started = time.perf_counter()
    for row in questions:
        text, sources = answer(engine, kb, row["question"], profile)
        ok = any(contains_fact(text, e) for e in row["expected"])
        contained += ok
        rows.append({"question": row["question"], "answer": text, "ok": ok,
                     "top_source": sources[0].path.rsplit("/", 1)[-1] if sources else None})
    return {"questions": len(questions), "containment": contained / len(questions),
            "seconds_per_answer": (time.perf_counter() - started) / len(questions), "answers": rows}


def main(argv: list[str] | None = None) -> int:
    """Index the eval notes in a temporary home, then measure."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a fifth of the questions, 4 answers (for tests)")
    parser.add_argument("--profile", default="laptop-8gb", help="device profile for k and passage tokens")
    parser.add_argument("--home", type=Path, help="ASSISTANT_HOME to use (default: a temporary folder)")
    parser.add_argument("--no-answers", action="store_true", help="skip the model answers")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "knowledge_retrieval.json")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    with tempfile.TemporaryDirectory() as scratch:
        settings = Settings(home=args.home or Path(scratch))
        profile = load_profile(args.profile)
        report = Indexer(settings).run([EVAL / "notes"])
        kb = KnowledgeBase.open(settings)
        result = {"profile": profile.name, "quick": args.quick, "chunks": report.chunks_total,
                  "retrieval": retrieval_metrics(kb, load_questions(args.quick), 4)}
        if not args.no_answers:
            questions = load_questions(args.quick)
            result["answers"] = answer_metrics(kb, questions[:4] if args.quick else questions, settings, profile)
        kb.close()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    summary = {"hit@1": result["retrieval"]["hit@1"], "hit@4": result["retrieval"]["hit@4"]}
    if "answers" in result:
        summary["containment"] = result["answers"]["containment"]
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
