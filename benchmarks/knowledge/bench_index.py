"""Index scale: personalize throughput, query latency (embed + hybrid search) at growing
index sizes, hnswlib recall@10 against exact search, and the resident memory of a
process holding the largest index.

    .venv/bin/python benchmarks/knowledge/bench_index.py [--quick] [--sizes 1000,10000,100000]

How the large indexes are made: the throughput run embeds real notes through the real
``personalize`` pipeline. For the latency sizes, 2,000 synthetic note chunks are really
embedded; further vectors are made by mixing two real embeddings and adding noise (then
normalising), and their texts are drawn from the same vocabulary, and all of it goes in
through the real ``IndexWriter`` (SQLite, FTS5, hnswlib). Embedding 100k texts on 2 cores
would take longer than the measurement is worth; the mixed vectors keep the clustered
structure of real embeddings, which is what hnswlib's recall depends on.
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
from assistant.knowledge.chunker import Chunk, ChunkerConfig  # noqa: E402
from assistant.knowledge.embedder import OnnxEmbedder  # noqa: E402
from assistant.knowledge.encoders import DEFAULT_ENCODER, ENCODERS  # noqa: E402
from assistant.knowledge.indexer import Indexer  # noqa: E402
from assistant.knowledge.layout import IndexLayout  # noqa: E402
from assistant.knowledge.vectors import HNSW_EF_SEARCH  # noqa: E402
from assistant.knowledge.writer import IndexWriter  # noqa: E402
from assistant.settings import Settings  # noqa: E402

EVAL = Path(__file__).resolve().parent / "eval"
TOPICS = ["dentist", "birthday", "rent", "car", "garden", "running", "recipe", "passport", "meeting", "guitar",
          "insurance", "vacation", "bank", "school", "neighbour", "doctor", "laptop", "parking", "dog", "books"]


def vocabulary(rng: random.Random, size: int = 6000) -> list[str]:
    """Real words from the eval notes plus pseudo-words, in a random frequency order."""
    words = sorted({w.lower().strip(".,:;!?()\"'") for p in (EVAL / "notes").rglob("*.md")
                    for w in p.read_text().split() if w.isalpha()})
    syllables = ["ka", "lo", "mi", "ren", "tu", "sa", "vel", "do", "ni", "por", "el", "qua", "ist", "ber", "on"]
    while len(words) < size:
        words.append("".join(rng.choice(syllables) for _ in range(rng.randint(2, 4))))
    rng.shuffle(words)
    return words


def synthetic_text(rng: random.Random, words: list[str], n_words: int = 60) -> str:
    """A note-like passage: a topic word, then words with Zipf-like frequencies (a
    log-uniform rank gives frequency ~ 1/rank)."""
    picked = [words[int(len(words) ** rng.random()) - 1] for _ in range(n_words)]
    return f"My {rng.choice(TOPICS)} note. " + " ".join(picked) + "."


def write_notes(folder: Path, files: int, rng: random.Random, words: list[str]) -> None:
    """Markdown notes with a few sections each, for the throughput run."""
    for i in range(files):
        sections = "".join(f"\n## Part {j}\n{synthetic_text(rng, words, 50)}\n" for j in range(4))
        path = folder / f"topic{i % 20}" / f"note{i}.md"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"# Note {i}\n{sections}")


def throughput(home: Path, files: int, rng: random.Random, words: list[str]) -> dict:
    """Chunks per second of a first personalize run, and the time of an unchanged re-run."""
    notes = home.parent / "notes"
    write_notes(notes, files, rng, words)
    settings = Settings(home=home)
    Indexer(settings).embedder  # export/load the encoder outside the timed run
    first = Indexer(settings).run([notes])
    second = Indexer(settings).run([notes])
    return {"files": files, "chunks": first.chunks_total, "seconds": round(first.seconds, 2),
            "chunks_per_s": round(first.embedded / first.seconds, 1), "unchanged_rerun_s": round(second.seconds, 3)}


def fill_index(settings: Settings, size: int, embedder: OnnxEmbedder, rng: random.Random, words: list[str],
               real: int) -> np.ndarray:
    """``size`` chunks through IndexWriter: ``real`` really embedded, the rest mixed."""
    np_rng = np.random.default_rng(rng.randint(0, 2**31))
    base_texts = [synthetic_text(rng, words) for _ in range(min(real, size))]
    base = embedder.encode(base_texts)
    spec = ENCODERS[DEFAULT_ENCODER]
    all_vectors = []
    with IndexWriter(IndexLayout.for_settings(settings), spec.name, spec.dim, ChunkerConfig()) as writer:
        for start in range(0, size, 1000):
            count = min(1000, size - start)
            texts, vectors = [], []
            for i in range(start, start + count):
                if i < len(base_texts):
                    texts.append(base_texts[i])
                    vectors.append(base[i])
                else:
                    a, b = np_rng.integers(0, len(base), 2)
                    mixed = base[a] + 0.5 * base[b] + np_rng.normal(0, 0.02, spec.dim)
                    vectors.append(mixed / np.linalg.norm(mixed))
                    texts.append(synthetic_text(rng, words))
            vectors = np.asarray(vectors, dtype=np.float32)
            chunks = [Chunk(j, "Synthetic", 1, 1, text, 60) for j, text in enumerate(texts)]
            writer.add_document(f"/synthetic/doc{start}.md", "markdown", 0, 0, f"hash{start}", chunks, vectors)
            all_vectors.append(vectors)
        writer.commit()
    return np.concatenate(all_vectors)


def latency_and_recall(settings: Settings, vectors: np.ndarray, queries: list[str], k: int = 10) -> dict:
    """p50/p95 of KnowledgeBase.search (embed + hybrid) and hnswlib recall@10."""
    kb = KnowledgeBase.open(settings)
    kb.search("warm up the encoder", 4)
    times = []
    for query in queries:
        started = time.perf_counter()
        kb.search(query, 4)
        times.append((time.perf_counter() - started) * 1000)
    query_vectors = np.asarray(kb.embed(queries), dtype=np.float32)
    exact = np.argsort(-(query_vectors @ vectors.T), axis=1)[:, :k] + 1  # chunk ids are 1..n in insertion order
    recall = {}
    for ef in sorted({64, 128, 256, 512, HNSW_EF_SEARCH}):
        found = sum(len({label for label, _ in kb._vectors.search(q, k, ef)} & set(exact[row].tolist()))
                    for row, q in enumerate(query_vectors))
        recall[f"recall@10_ef{ef}"] = round(found / (k * len(queries)), 4)
    lexical_ms = []
    for query in queries:
        started = time.perf_counter()
        kb._store.lexical_search(query, 50)
        lexical_ms.append((time.perf_counter() - started) * 1000)
    kb.close()
    return {"queries": len(queries), "p50_ms": round(float(np.percentile(times, 50)), 2),
            "p95_ms": round(float(np.percentile(times, 95)), 2),
            "bm25_p50_ms": round(float(np.percentile(lexical_ms, 50)), 2),
            "recall@10": recall[f"recall@10_ef{HNSW_EF_SEARCH}"], **recall}


RSS_PROBE = """
import json, sys, psutil
from assistant.settings import Settings
from assistant.knowledge.base import KnowledgeBase
kb = KnowledgeBase.open(Settings(home=sys.argv[1]))
kb.search("when is the dentist appointment", 4)
print(json.dumps({"rss_mb": round(psutil.Process().memory_info().rss / 2**20, 1),
                  "peak_rss_mb": round(int(next(line.split()[1] for line in open("/proc/self/status")
                                            if line.startswith("VmHWM"))) / 1024, 1),
                  "torch_imported": "torch" in sys.modules}))
"""


def resident_memory(home: Path) -> dict:
    """RSS of a fresh process after KnowledgeBase.open + one search."""
    done = subprocess.run([sys.executable, "-c", RSS_PROBE, str(home)], capture_output=True, text=True,
                          timeout=600, cwd=ROOT)
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1:]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    """Run every measurement in temporary homes and write one JSON result."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, for tests (< 60 s)")
    parser.add_argument("--sizes", default="1000,10000,100000", help="index sizes in chunks")
    parser.add_argument("--files", type=int, default=300, help="notes for the throughput run (0: skip)")
    parser.add_argument("--encoder-home", type=Path, help="a home whose exported encoder to reuse")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "knowledge_index.json")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    sizes = [200] if args.quick else [int(s) for s in args.sizes.split(",")]
    files = 10 if args.quick else args.files
    rng = random.Random(0)
    words = vocabulary(rng)
    questions = [json.loads(line)["question"] for line in (EVAL / "questions.jsonl").read_text().splitlines()]
    queries = (questions + [synthetic_text(rng, words, 8) for _ in range(200)])[: 20 if args.quick else 200]
    result = {"quick": args.quick, "cpus": len(os.sched_getaffinity(0)), "sizes": {}}
    with tempfile.TemporaryDirectory() as scratch:
        homes = Path(scratch)
        encoder_home = args.encoder_home or homes / "encoder"
        embedder = OnnxEmbedder.for_settings(Settings(home=encoder_home))
        for name in ["throughput", *map(str, sizes)]:
            _link_encoder(encoder_home, homes / name / "home")
        if files:
            result["throughput"] = throughput(homes / "throughput" / "home", files, rng, words)
        for size in sizes:
            settings = Settings(home=homes / str(size) / "home")
            started = time.perf_counter()
            vectors = fill_index(settings, size, embedder, rng, words, real=min(size, 100 if args.quick else 2000))
            entry = {"build_s": round(time.perf_counter() - started, 1)}
            entry.update(latency_and_recall(settings, vectors, queries))
            entry.update(resident_memory(settings.home))
            result["sizes"][str(size)] = entry
            print(json.dumps({size: entry}), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result.get("throughput")))
    return 0


def _link_encoder(encoder_home: Path, home: Path) -> None:
    """Reuse one exported encoder in every temporary home (hard links, no re-export)."""
    spec = ENCODERS[DEFAULT_ENCODER]
    source = encoder_home / "knowledge" / "encoders" / spec.name
    target = home / "knowledge" / "encoders" / spec.name
    target.mkdir(parents=True, exist_ok=True)
    for path in source.iterdir():
        os.link(path, target / path.name)


if __name__ == "__main__":
    raise SystemExit(main())
