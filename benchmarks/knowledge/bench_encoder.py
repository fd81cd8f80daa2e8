"""The registered sentence encoders side by side (fp32 and its int8 quantization): resident
memory of the onnxruntime session, query latency, indexing throughput, how close each
one's vectors are to fp32's, and retrieval over both eval sets (hybrid search as served,
and vector-only, which shows an encoder's difference more plainly).

    .venv/bin/python benchmarks/knowledge/bench_encoder.py [--quick] [--encoder-home HOME]

Memory and speed are measured in a fresh process per encoder, with 2 threads. Texts are
the router eval notes (paragraphs and whole notes); retrieval uses the knowledge eval
(44 questions) and the router eval's questions about notes (221; a hit is any of the
notes a question names). Writes ``--out`` (default benchmarks/results/encoder.json).
"""
from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from assistant.knowledge.base import KnowledgeBase  # noqa: E402
from assistant.knowledge.embedder import OnnxEmbedder  # noqa: E402
from assistant.knowledge.encoders import ENCODERS, artifact_dir, ensure_onnx  # noqa: E402
from assistant.knowledge.indexer import Indexer  # noqa: E402
from assistant.knowledge.layout import IndexLayout  # noqa: E402
from assistant.knowledge.store import Store  # noqa: E402
from assistant.knowledge.writer import load_vectors  # noqa: E402
from assistant.settings import Settings  # noqa: E402
from benchmarks.report.common import machine  # noqa: E402

KNOWLEDGE = ROOT / "benchmarks" / "knowledge" / "eval"
ROUTER = ROOT / "benchmarks" / "router" / "eval"
REFERENCE = "all-MiniLM-L6-v2"  # fp32: what the others are compared with
K = 4

# One encoder in a fresh process: VmRSS/VmHWM (MB) around import and session creation,
# batch-1 query latency and batch-32 throughput.
SPEED = r"""
import json, sys, time
import numpy as np
from pathlib import Path
def mb():
    rows = dict(line.split(":", 1) for line in open("/proc/self/status"))
    return {k: int(rows[k].split()[0]) // 1024 for k in ("VmRSS", "VmHWM")}
folder, texts, queries = Path(sys.argv[1]), json.loads(sys.argv[2]), json.loads(sys.argv[3])
start = mb()
import onnxruntime  # noqa: F401
imported = mb()
from assistant.knowledge.embedder import OnnxEmbedder
embedder = OnnxEmbedder(folder, n_threads=2)
loaded = mb()
embedder.encode(queries[:1])
latencies = []
for query in queries:
    t = time.perf_counter(); embedder.encode([query]); latencies.append((time.perf_counter() - t) * 1000)
queried = mb()
t = time.perf_counter(); embedder.encode(texts); seconds = time.perf_counter() - t
print(json.dumps({"import_mb": imported["VmRSS"] - start["VmRSS"],
                  "session_rss_mb": loaded["VmRSS"] - imported["VmRSS"],
                  "session_peak_mb": loaded["VmHWM"] - imported["VmRSS"],
                  "after_queries_rss_mb": queried["VmRSS"] - start["VmRSS"],
                  "query_p50_ms": round(float(np.median(latencies)), 2),
                  "query_p90_ms": round(float(np.quantile(latencies, 0.9)), 2),
                  "index_texts_per_s": round(len(texts) / seconds, 1),
                  "after_indexing_peak_mb": mb()["VmHWM"] - start["VmRSS"]}))
"""


def note_texts(count: int) -> list[str]:
    """Paragraphs (three quarters) and whole notes from the router eval notes, shuffled."""
    paragraphs, notes = [], []
    for path in sorted(p for p in (ROUTER / "notes").rglob("*") if p.is_file()):
        text = path.read_text(errors="replace").strip()
        notes.append(text)
        paragraphs += [part.strip() for part in text.split("\n\n") if len(part.strip()) > 20]
    rng = random.Random(0)
    rng.shuffle(paragraphs)
    rng.shuffle(notes)
    return paragraphs[: count * 3 // 4] + notes[: count - count * 3 // 4]


def question_sets(quick: bool) -> dict[str, tuple[Path, list[tuple[str, list[str]]]]]:
    """name -> (notes folder, [(question, files that answer it)])."""
    knowledge = [json.loads(line) for line in (KNOWLEDGE / "questions.jsonl").read_text().splitlines() if line]
    router = [json.loads(line) for line in (ROUTER / "questions.jsonl").read_text().splitlines() if line]
    sets = {"knowledge": (KNOWLEDGE / "notes", [(row["question"], [row["file"]]) for row in knowledge]),
            "router": (ROUTER / "notes", [(row["question"], row["notes"]) for row in router if row["notes"]])}
    return {name: (folder, rows[::5] if quick else rows) for name, (folder, rows) in sets.items()}


def speed(folder: Path, texts: list[str], queries: list[str]) -> dict:
    """The SPEED snippet's figures for the encoder exported in ``folder``."""
    done = subprocess.run([sys.executable, "-c", SPEED, str(folder), json.dumps(texts), json.dumps(queries)],
                          capture_output=True, text=True, check=True, cwd=ROOT, timeout=600)
    return json.loads(done.stdout.strip().splitlines()[-1])


def ranks(files: list[str], wanted: list[str]) -> int | None:
    """The best rank (from 1) of any wanted file among ``files``; None if none is there."""
    found = [files.index(name) + 1 for name in wanted if name in files]
    return min(found) if found else None


def summary(all_ranks: list[int | None]) -> dict:
    """hit@1, hit@K and MRR of the ranks."""
    n = len(all_ranks)
    return {"hit@1": round(sum(r == 1 for r in all_ranks) / n, 4),
            f"hit@{K}": round(sum(r is not None for r in all_ranks) / n, 4),
            "mrr": round(sum(1 / r for r in all_ranks if r) / n, 4)}


def retrieval(home: Path, encoder: str, notes: Path, questions: list[tuple[str, list[str]]]) -> dict:
    """Index ``notes`` into ``home`` with ``encoder``; hybrid and vector-only hit rates."""
    settings = Settings(home=home)
    Indexer(settings, encoder=encoder).run([notes])
    root = notes.resolve()
    hybrid, vector = [], []
    layout = IndexLayout.for_settings(settings)
    store = Store(layout.database, writable=False)
    vectors = load_vectors(store, layout, ENCODERS[encoder].dim)
    embedder = OnnxEmbedder.for_settings(settings, encoder, n_threads=2)
    with KnowledgeBase.open(settings, encoder) as kb:
        for question, wanted in questions:
            hybrid.append(ranks([str(Path(p.path).relative_to(root)) for p in kb.search(question, K)], wanted))
            ids = [chunk_id for chunk_id, _ in vectors.search(embedder.encode([question])[0], K)]
            rows = store.chunks_by_id(ids)
            vector.append(ranks([str(Path(rows[i].path).relative_to(root)) for i in ids if i in rows], wanted))
    store.close()
    return {"hybrid": summary(hybrid), "vector": summary(vector)}


def link_encoders(source_home: Path, home: Path) -> None:
    """Every exported encoder of ``source_home`` in ``home`` (symlinks, no re-export)."""
    for spec in ENCODERS.values():
        target = artifact_dir(Settings(home=home), spec)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(artifact_dir(Settings(home=source_home), spec), target, target_is_directory=True)


def main(argv: list[str] | None = None) -> int:
    """Measure every registered encoder; write the JSON report."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="40 texts, a fifth of the questions")
    parser.add_argument("--encoder-home", type=Path, help="a home whose exported encoders to reuse")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "encoder.json")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    texts = note_texts(40 if args.quick else 200)
    sets = question_sets(args.quick)
    queries = [question for question, _ in sets["knowledge"][1]]
    result = {"quick": args.quick, "machine": machine(), "texts": len(texts), "encoders": {}}
    with tempfile.TemporaryDirectory(prefix="bench-encoder-") as scratch:
        encoder_home = (args.encoder_home or Path(scratch) / "encoders").resolve()
        vectors = {}
        for name, spec in ENCODERS.items():
            folder = ensure_onnx(Settings(home=encoder_home), spec)
            row = {"file_mb": round((folder / "model.onnx").stat().st_size / 2**20, 1),
                   **speed(folder, texts, queries)}
            vectors[name] = OnnxEmbedder(folder, n_threads=2).encode(texts)
            for set_name, (notes, questions) in sets.items():
                home = Path(scratch) / f"{name}-{set_name}"
                link_encoders(encoder_home, home)
                row[set_name] = retrieval(home, name, notes, questions)
            result["encoders"][name] = row
            print(json.dumps({name: row}), flush=True)
        for name, row in result["encoders"].items():
            cosine = (vectors[name] * vectors[REFERENCE]).sum(axis=1)
            row["cosine_to_fp32"] = {"min": round(float(cosine.min()), 4), "mean": round(float(cosine.mean()), 4)}
    result["questions"] = {name: len(rows) for name, (_, rows) in sets.items()}
    result["seconds"] = round(time.perf_counter() - started, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
