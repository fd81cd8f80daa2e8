"""A bounded load test of ``assistant serve`` on loopback: N requests at concurrency C,
mixed streaming and not, a share of the streaming clients leaving mid-answer.

What it checks (and writes to JSON): no 5xx but 503 (each with Retry-After), every
accepted request completes, no admission place leaks (``/health`` shows 0 in progress at
the end), and the server's resident memory grows by under 10% from the first quarter of
the run to the last.

    python benchmarks/load.py                 # 2,000 requests at concurrency 16
    python benchmarks/load.py --quick         # 32 requests at concurrency 8 (what the tests run)
"""
from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.helpers import ServerProcess  # noqa: E402

QUESTIONS = ["Say hi.", "Name a colour.", "What is two plus two?", "Give me a short word.", "Name a fruit."]


def one_request(base_url: str, index: int, leave_share: float, rng: random.Random) -> dict:
    """One client: streaming (maybe leaving after the first chunk) or not."""
    stream, leaves = rng.random() < 0.5, False
    body = {"messages": [{"role": "user", "content": QUESTIONS[index % len(QUESTIONS)]}],
            "max_tokens": rng.choice([4, 8, 16]), "temperature": 0.0, "stream": stream}
    started = time.perf_counter()
    try:
        if not stream:
            response = httpx.post(f"{base_url}/v1/chat/completions", json=body, timeout=300)
            return {"status": response.status_code, "retry_after": response.headers.get("retry-after"),
                    "completed": response.status_code == 200 and "choices" in response.json(),
                    "seconds": time.perf_counter() - started, "stream": False, "left": False}
        leaves = rng.random() < leave_share * 2  # half the clients stream: a quarter of all leave
        with httpx.stream("POST", f"{base_url}/v1/chat/completions", json=body, timeout=300) as response:
            done = False
            for line in response.iter_lines():
                if leaves:
                    break  # gone after the first chunk
                done = done or line == "data: [DONE]"
            return {"status": response.status_code, "retry_after": response.headers.get("retry-after"),
                    "completed": leaves or done or response.status_code != 200,
                    "seconds": time.perf_counter() - started, "stream": True, "left": leaves}
    except httpx.HTTPError as exc:
        return {"status": f"transport error: {type(exc).__name__}", "completed": False, "stream": stream,
                "left": leaves, "seconds": time.perf_counter() - started}


def sample_memory(pid: int, stop: threading.Event, samples: list) -> None:
    process = psutil.Process(pid)
    while not stop.is_set():
        try:
            samples.append((time.perf_counter(), process.memory_info().rss / 2**20))
        except psutil.Error:
            return
        time.sleep(0.25)


def quarter_medians(samples: list) -> tuple[float, float]:
    """Median RSS (MB) of the first and the last quarter of the run."""
    values = [mb for _, mb in samples]
    quarter = max(1, len(values) // 4)
    return statistics.median(values[:quarter]), statistics.median(values[-quarter:])


def run(requests: int, concurrency: int, leave_share: float, seed: int, queue_size: int | None) -> dict:
    """Start a server (the profile's queue unless ``queue_size``), load it, and report."""
    home = Path(tempfile.mkdtemp(prefix="bench-load-"))
    server = ServerProcess(home, "--n-ctx", "512", *(["--queue-size", str(queue_size)] if queue_size else []))
    try:
        server.wait_ready()
        httpx.post(f"{server.base_url}/v1/chat/completions", timeout=120,
                   json={"messages": [{"role": "user", "content": "warm up"}], "max_tokens": 2})
        stop, samples = threading.Event(), []
        sampler = threading.Thread(target=sample_memory, args=(server.proc.pid, stop, samples), daemon=True)
        sampler.start()
        rngs = [random.Random(seed + i) for i in range(requests)]
        started = time.perf_counter()
        with ThreadPoolExecutor(concurrency) as pool:
            results = list(pool.map(lambda i: one_request(server.base_url, i, leave_share, rngs[i]), range(requests)))
        wall = time.perf_counter() - started
        deadline = time.monotonic() + 30
        while (health := httpx.get(f"{server.base_url}/health", timeout=10).json())["requests_in_progress"] and \
                time.monotonic() < deadline:
            time.sleep(0.2)
        stop.set()
        sampler.join(5)
    finally:
        server.stop()
    return summarise(results, health, samples, wall, requests, concurrency)


def summarise(results: list, health: dict, samples: list, wall: float, requests: int, concurrency: int) -> dict:
    """The report: statuses, completions, leaks and memory growth; ``ok`` when all hold."""
    statuses = Counter(str(r["status"]) for r in results)
    bad = [r for r in results if not (r["status"] in (200, 503))]
    no_retry = [r for r in results if r["status"] == 503 and not r.get("retry_after")]
    accepted = [r for r in results if r["status"] == 200]
    first, last = quarter_medians(samples) if samples else (0.0, 0.0)
    growth = (last - first) / first if first else 0.0
    report = {
        "requests": requests, "concurrency": concurrency, "wall_s": round(wall, 1), "statuses": dict(statuses),
        "left_mid_stream": sum(r["left"] for r in results), "accepted": len(accepted),
        "accepted_incomplete": sum(not r["completed"] for r in accepted), "other_failures": len(bad),
        "503_without_retry_after": len(no_retry), "in_progress_at_end": health["requests_in_progress"],
        "cancelled_generations": health["cancelled_generations"],
        "rss_first_quarter_mb": round(first, 1), "rss_last_quarter_mb": round(last, 1),
        "rss_growth": round(growth, 4),
        "latency_p50_s": round(statistics.median(r["seconds"] for r in accepted), 3) if accepted else None,
    }
    report["ok"] = (not bad and not no_retry and report["accepted_incomplete"] == 0
                    and report["in_progress_at_end"] == 0 and growth < 0.10)
    return report


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--leave-share", type=float, default=0.25, help="share of all clients that leave mid-stream")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--queue-size", type=int, default=None, help="default: the device profile's")
    parser.add_argument("--quick", action="store_true", help="32 requests at concurrency 8")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/load.json"))
    args = parser.parse_args(argv)
    if args.quick:
        args.requests, args.concurrency = 32, 8
    report = run(args.requests, args.concurrency, args.leave_share, args.seed, args.queue_size)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
