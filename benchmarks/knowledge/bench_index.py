"""Index scale: query latency (embed + hybrid search, split by stage), hnswlib recall@10
against exact search and index build speed at growing index sizes; personalize time at
growing notes folders; resident memory of a process holding each index, and of
``assistant serve`` after one RAG answer over the largest index of at most 100k chunks.

    .venv/bin/python benchmarks/knowledge/bench_index.py [--quick] [--sizes 1000,10000,100000,1000000]

How the large indexes are made: the personalize runs embed real notes through the real
pipeline. For the latency sizes, 2,000 synthetic note chunks are really embedded; further
vectors are made by mixing two real embeddings and adding noise (then normalising), and
their texts are drawn from the same vocabulary, and all of it goes in through the real
``IndexWriter`` (SQLite, FTS5, hnswlib). Embedding 1M texts on 2 cores would take longer
than the measurement is worth; the mixed vectors keep the clustered structure of real
embeddings, which is what hnswlib's recall depends on. The exact top-10 of every query is
kept while the vectors stream into the writer, so no size holds all its vectors twice.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
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
from assistant.knowledge.store import Store  # noqa: E402
from assistant.knowledge.vectors import HNSW_EF_SEARCH  # noqa: E402
from assistant.knowledge.writer import IndexWriter, load_vectors  # noqa: E402
from assistant.settings import Settings  # noqa: E402
from benchmarks.report.common import machine  # noqa: E402

EVAL = Path(__file__).resolve().parent / "eval"
TOPICS = ["dentist", "birthday", "rent", "car", "garden", "running", "recipe", "passport", "meeting", "guitar",
          "insurance", "vacation", "bank", "school", "neighbour", "doctor", "laptop", "parking", "dog", "books"]
QUICK = {"sizes": "1000,5000", "notes": "3,10", "queries": 20, "real": 100}
FULL = {"sizes": "1000,10000,100000,1000000", "notes": "30,100,300", "queries": 200, "real": 2000}
RECALL_K = 10
SEARCH_K = 4  # passages per answer, as the default profiles ask
SERVE_MAX_CHUNKS = 100_000
WRITE_BATCH = 1000  # chunks per synthetic document


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


def synthetic_texts(np_rng: np.random.Generator, words: list[str], count: int, n_words: int = 60) -> list[str]:
    """``count`` passages distributed like ``synthetic_text``, drawn with numpy (1M of
    them one word at a time would take a minute)."""
    ranks = (len(words) ** np_rng.random((count, n_words))).astype(np.int64) - 1
    topics = np_rng.integers(0, len(TOPICS), count)
    return [f"My {TOPICS[t]} note. " + " ".join(words[r] for r in row) + "."
            for t, row in zip(topics.tolist(), ranks.tolist())]


def write_notes(folder: Path, files: int, rng: random.Random, words: list[str]) -> None:
    """Markdown notes with a few sections each, for the personalize runs."""
    for i in range(files):
        sections = "".join(f"\n## Part {j}\n{synthetic_text(rng, words, 50)}\n" for j in range(4))
        path = folder / f"topic{i % 20}" / f"note{i}.md"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"# Note {i}\n{sections}")


def personalize_scaling(scratch: Path, encoder_home: Path, note_counts: list[int], rng: random.Random,
                        words: list[str]) -> list[dict]:
    """Per notes-folder size, a first personalize run into a fresh home (encoder already
    loaded, as under ``--watch``) and an unchanged re-run."""
    rows = []
    for files in note_counts:
        home = scratch / f"notes{files}" / "home"
        _link_encoder(encoder_home, home)
        notes = home.parent / "notes"
        write_notes(notes, files, rng, words)
        indexer = Indexer(Settings(home=home))
        started = time.perf_counter()
        indexer.embedder  # noqa: B018 - load the encoder outside the timed runs
        load_s = time.perf_counter() - started
        first = indexer.run([notes])
        second = indexer.run([notes])
        rows.append({"files": files, "chunks": first.chunks_total, "seconds": round(first.seconds, 3),
                     "chunks_per_s": round(first.embedded / first.seconds, 1),
                     "encoder_load_s": round(load_s, 2), "unchanged_rerun_s": round(second.seconds, 4)})
        print(json.dumps({"personalize": rows[-1]}), flush=True)
    return rows


class ExactTopK:
    """The exact top-k chunk ids of each query, updated batch by batch (cosine of unit vectors)."""

    def __init__(self, queries: np.ndarray, k: int):
        self.queries = queries
        self.k = k
        self.scores = np.full((len(queries), k), -np.inf, dtype=np.float32)
        self.ids = np.zeros((len(queries), k), dtype=np.int64)

    def add(self, first_id: int, vectors: np.ndarray) -> None:
        """Vectors whose chunk ids are ``first_id``, ``first_id + 1``, ..."""
        scores = np.concatenate([self.scores, self.queries @ vectors.T], axis=1)
        ids = np.concatenate([self.ids, np.broadcast_to(np.arange(first_id, first_id + len(vectors)),
                                                        (len(self.queries), len(vectors)))], axis=1)
        best = np.argpartition(-scores, self.k - 1, axis=1)[:, :self.k]
        self.scores = np.take_along_axis(scores, best, axis=1)
        self.ids = np.take_along_axis(ids, best, axis=1)


def fill_index(settings: Settings, size: int, base_texts: list[str], base: np.ndarray, rng: random.Random,
               words: list[str], exact: ExactTopK) -> dict:
    """``size`` chunks through IndexWriter: the really embedded ``base_texts`` (vectors
    ``base``) first, then mixed ones. Returns the writing time; ``exact`` sees every vector."""
    np_rng = np.random.default_rng(rng.randint(0, 2**31))
    spec = ENCODERS[DEFAULT_ENCODER]
    write_s = 0.0
    with IndexWriter(IndexLayout.for_settings(settings), spec.name, ChunkerConfig()) as writer:
        for start in range(0, size, WRITE_BATCH):
            count = min(WRITE_BATCH, size - start)
            real_here = max(0, min(count, len(base_texts) - start))
            texts = base_texts[start:start + real_here] + synthetic_texts(np_rng, words, count - real_here)
            pairs = np_rng.integers(0, len(base), (count - real_here, 2))
            mixed = base[pairs[:, 0]] + 0.5 * base[pairs[:, 1]] + np_rng.normal(0, 0.02, (len(pairs), spec.dim))
            mixed /= np.linalg.norm(mixed, axis=1, keepdims=True)
            vectors = np.concatenate([base[start:start + real_here], mixed]).astype(np.float32)
            chunks = [Chunk(j, "Synthetic", 1, 1, text, 60) for j, text in enumerate(texts)]
            begun = time.perf_counter()
            writer.add_document(f"/synthetic/doc{start}.md", "markdown", 0, 0, f"hash{start}", chunks, vectors)
            write_s += time.perf_counter() - begun
            exact.add(start + 1, vectors)  # chunk ids are 1..n in insertion order on a fresh index
        begun = time.perf_counter()
        writer.commit()
        write_s += time.perf_counter() - begun
        assert writer.store.chunk_count() == size
    return {"write_s": round(write_s, 1),
            "build_chunks_per_s": round(size / write_s, 1)}


def _percentiles(values: list[float], prefix: str) -> dict:
    return {f"{prefix}p50_ms": round(float(np.percentile(values, 50)), 2),
            f"{prefix}p95_ms": round(float(np.percentile(values, 95)), 2)}


def latency(settings: Settings, queries: list[str]) -> dict:
    """p50/p95 of KnowledgeBase.search (embed + hybrid, as the product runs it) and of
    each of its stages (embedding and BM25 overlap, so stages add up to more than the total)."""
    kb = KnowledgeBase.open(settings)
    kb.search("warm up the encoder", SEARCH_K)
    times, cpu_times, stages = [], [], {}
    for query in queries:
        timings: dict[str, float] = {}
        started, cpu_started = time.perf_counter(), time.process_time()
        kb.search(query, SEARCH_K, timings)
        times.append((time.perf_counter() - started) * 1000)
        cpu_times.append((time.process_time() - cpu_started) * 1000)
        for stage, ms in timings.items():
            stages.setdefault(stage.removesuffix("_ms"), []).append(ms)
    kb.close()
    # CPU time of all the process's threads: less disturbed by other processes than wall
    # time, but it adds up the overlapping stages instead of overlapping them
    result = {"queries": len(queries), **_percentiles(times, ""), **_percentiles(cpu_times, "cpu_")}
    for stage, values in stages.items():
        result.update(_percentiles(values, f"{stage}_"))
    return result


def recall(settings: Settings, query_vectors: np.ndarray, exact: ExactTopK) -> dict:
    """hnswlib recall@10 against exact search at several ``ef``, with each ef's p50 time."""
    layout = IndexLayout.for_settings(settings)
    store = Store(layout.database, writable=False)
    vectors = load_vectors(store, layout, ENCODERS[DEFAULT_ENCODER].dim)
    store.close()
    result = {}
    for ef in sorted({64, 128, 256, 384, 512, 768, 1024, HNSW_EF_SEARCH}):
        found, times = 0, []
        for row, query in enumerate(query_vectors):
            started = time.perf_counter()
            labels = {label for label, _ in vectors.search(query, RECALL_K, ef)}
            times.append((time.perf_counter() - started) * 1000)
            found += len(labels & set(exact.ids[row].tolist()))
        result[f"recall@10_ef{ef}"] = round(found / (RECALL_K * len(query_vectors)), 4)
        result[f"knn_ef{ef}_p50_ms"] = round(float(np.percentile(times, 50)), 3)
    result["ef"] = HNSW_EF_SEARCH
    result["recall@10"] = result[f"recall@10_ef{HNSW_EF_SEARCH}"]
    return result


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
        return {"rss_error": (done.stderr.strip().splitlines() or ["no output"])[-1]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def index_bytes(settings: Settings) -> int:
    """Bytes on disk of the index (SQLite with its WAL, and the vector file)."""
    folder = IndexLayout.for_settings(settings).folder
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and "encoders" not in p.parts)


def serve_memory(home: Path, chunks: int, timeout_s: float = 240.0) -> dict:
    """VmHWM and VmRSS of ``assistant serve`` over ``home`` after one RAG answer via HTTP."""
    with socket.socket() as sock:  # a port nobody listens on right now
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "ASSISTANT_HOME": str(home), "HF_HUB_OFFLINE": "1"}
    log = home / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "assistant.cli", "serve", "--port", str(port),
                                 "--log-level", "warning"], env=env, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout_s
        while not _ready(base):
            if proc.poll() is not None or time.monotonic() > deadline:
                return {"error": f"server not ready: {log.read_text()[-300:]}"}
            time.sleep(0.3)
        body = {"messages": [{"role": "user", "content": "When is my dentist appointment?"}],
                "strategy": "rag", "max_tokens": 8, "temperature": 0}
        request = urllib.request.Request(f"{base}/v1/chat/completions", json.dumps(body).encode(),
                                         {"content-type": "application/json"})
        started = time.perf_counter()
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            answer = json.loads(response.read())
        answer_s = time.perf_counter() - started
        status = dict(line.split(":", 1) for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines())
        kib = {key: int(status[key].split()[0]) for key in ("VmHWM", "VmRSS")}
        return {"index_chunks": chunks, "vm_hwm_mb": round(kib["VmHWM"] / 1024, 1),
                "vm_rss_mb": round(kib["VmRSS"] / 1024, 1), "answer_s": round(answer_s, 2),
                "sources": len(answer.get("sources") or []),
                "strategy": (answer.get("plan") or {}).get("strategy")}
    except (OSError, ValueError, KeyError) as exc:
        return {"error": f"{type(exc).__name__}: {exc}"}
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _ready(base: str) -> bool:
    try:
        with urllib.request.urlopen(f"{base}/health", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def main(argv: list[str] | None = None) -> int:
    """Run every measurement in temporary homes and write one JSON result."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help=f"sizes {QUICK['sizes']}, notes {QUICK['notes']} "
                                                             "(for tests and `make bench-quick`, < 60 s)")
    parser.add_argument("--sizes", help=f"index sizes in chunks (default {FULL['sizes']})")
    parser.add_argument("--notes", help=f"notes-folder sizes for personalize (default {FULL['notes']}; '' skips)")
    parser.add_argument("--no-serve", action="store_true", help="skip the memory of `assistant serve`")
    parser.add_argument("--encoder-home", type=Path, help="a home whose exported encoder to reuse")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "knowledge_index.json")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    mode = QUICK if args.quick else FULL
    sizes = [int(s) for s in (args.sizes or mode["sizes"]).split(",")]
    note_counts = [int(n) for n in (mode["notes"] if args.notes is None else args.notes).split(",") if n]
    rng = random.Random(0)
    words = vocabulary(rng)
    questions = [json.loads(line)["question"] for line in (EVAL / "questions.jsonl").read_text().splitlines()]
    queries = (questions + [synthetic_text(rng, words, 8) for _ in range(200)])[: mode["queries"]]
    started = time.perf_counter()
    result = {"quick": args.quick, "machine": machine(), "cpus": len(os.sched_getaffinity(0)),
              "encoder": DEFAULT_ENCODER, "hnsw_ef": HNSW_EF_SEARCH, "search_k": SEARCH_K, "sizes": {}}
    with tempfile.TemporaryDirectory() as scratch:
        homes = Path(scratch)
        encoder_home = args.encoder_home or homes / "encoder"
        embedder = OnnxEmbedder.for_settings(Settings(home=encoder_home))
        query_vectors = embedder.encode(queries)
        base_texts = [synthetic_text(rng, words) for _ in range(min(mode["real"], max(sizes)))]
        started_embedding = time.perf_counter()
        base = embedder.encode(base_texts)  # shared by every size
        result["real_embedded"] = {"chunks": len(base_texts),
                                   "seconds": round(time.perf_counter() - started_embedding, 1)}
        if note_counts:
            result["personalize"] = personalize_scaling(homes, encoder_home, note_counts, rng, words)
        for size in sizes:
            settings = Settings(home=homes / str(size) / "home")
            _link_encoder(encoder_home, settings.home)
            exact = ExactTopK(query_vectors, RECALL_K)
            entry = {"chunks": size, **fill_index(settings, size, base_texts[:size], base[:size], rng, words, exact)}
            entry["load_before"] = round(os.getloadavg()[0], 2)
            entry.update(latency(settings, queries))
            entry.update(recall(settings, query_vectors, exact))
            entry.update(resident_memory(settings.home))
            entry["index_mb"] = round(index_bytes(settings) / 2**20, 1)
            entry["load_after"] = round(os.getloadavg()[0], 2)
            result["sizes"][str(size)] = entry
            print(json.dumps({size: entry}), flush=True)
        served = [s for s in sizes if s <= SERVE_MAX_CHUNKS]
        if args.no_serve:
            result["serve"] = {"skipped": "--no-serve"}
        elif not served:
            result["serve"] = {"skipped": f"no index of at most {SERVE_MAX_CHUNKS} chunks"}
        else:
            result["serve"] = serve_memory(homes / str(max(served)) / "home", max(served))
        print(json.dumps({"serve": result["serve"]}), flush=True)
    result["seconds"] = round(time.perf_counter() - started, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
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
