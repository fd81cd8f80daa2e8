"""The KV cache type against quality and memory, for the default model.

Quality: the model reads the same text (this repository's README, about 2,000 tokens) with
an f16 KV cache and with q8_0 (K and V, flash attention); per position, the KL divergence
of the next-token distribution from f16's, the top-1 agreement, and each run's perplexity.
Memory: ``assistant serve`` on each profile, peak resident memory (VmHWM) after one RAG
answer, with the profile's KV cache type and with f16.

    python benchmarks/bench_kv_cache.py            # quality at 2,048 tokens + memory for every profile
    python benchmarks/bench_kv_cache.py --quick    # 256 tokens, two profiles (what the tests run)
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from assistant.profiles import list_profiles, load_profile  # noqa: E402
from tests.helpers import ServerProcess, index_notes, SAMPLE_NOTES  # noqa: E402

# Reads the text with one KV cache type and saves the log-softmax of every position.
READ = r"""
import sys, numpy as np
from assistant.models.catalog import resolve_model
from assistant.models.engine import kv_cache_options
from assistant.models.llama_loader import load_llama
from assistant.settings import Settings
kv, tokens_file, out, n_ctx = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
model = resolve_model("default", Settings())
llm = load_llama(True, model_path=str(model.path), n_ctx=n_ctx, n_threads=2, n_batch=512, logits_all=True,
                 verbose=False, **kv_cache_options(kv))
tokens = [int(t) for t in open(tokens_file).read().split()]
llm.eval(tokens)
logits = np.asarray(llm.scores[: len(tokens)], dtype=np.float64)
logits -= logits.max(axis=1, keepdims=True)
logp = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
np.save(out, logp.astype(np.float32))
"""


def text_tokens(count: int) -> list[int]:
    """The first ``count`` tokens of README.md, with the default model's tokenizer."""
    from assistant.models.catalog import resolve_model
    from assistant.models.llama_loader import load_llama
    from assistant.settings import Settings

    llm = load_llama(True, model_path=str(resolve_model("default", Settings()).path), vocab_only=True, verbose=False)
    tokens = llm.tokenize((ROOT / "README.md").read_text().encode(), add_bos=True)
    if len(tokens) < count:
        raise SystemExit(f"README.md has only {len(tokens)} tokens")
    return tokens[:count]


def quality(count: int, work: Path) -> dict:
    """KL(f16 || q8_0) per position, top-1 agreement and perplexities."""
    tokens = text_tokens(count)
    (work / "tokens.txt").write_text(" ".join(map(str, tokens)))
    logps = {}
    for kv in ("f16", "q8_0"):
        out = work / f"{kv}.npy"
        subprocess.run([sys.executable, "-c", READ, kv, str(work / "tokens.txt"), str(out), str(max(512, count))],
                       check=True, cwd=ROOT, capture_output=True)
        logps[kv] = np.load(out).astype(np.float64)
    ref, test = logps["f16"], logps["q8_0"]
    kl = (np.exp(ref) * (ref - test)).sum(axis=1)
    targets = np.array(tokens[1:])
    ppl = {kv: float(np.exp(-lp[np.arange(len(targets)), targets].mean())) for kv, lp in logps.items()}
    return {"tokens": count, "kl_mean": float(kl.mean()), "kl_p99": float(np.quantile(kl, 0.99)),
            "kl_max": float(kl.max()), "top1_agreement": float((ref.argmax(1) == test.argmax(1)).mean()),
            "perplexity_f16": ppl["f16"], "perplexity_q8_0": ppl["q8_0"]}


def peak_memory_mb(profile: str, kv: str, work: Path) -> dict:
    """VmHWM / VmRSS of ``assistant serve`` on ``profile`` after one RAG answer."""
    home = work / f"home-{profile}-{kv}"
    home.mkdir()
    notes = work / f"notes-{profile}-{kv}"
    notes.mkdir()
    index_notes(home, notes, SAMPLE_NOTES)
    server = ServerProcess(home, "--profile", profile, "--kv-cache-type", kv)
    try:
        server.wait_ready(300)
        idle = _status_mb(server.proc.pid)
        answer = httpx.post(f"{server.base_url}/v1/chat/completions", timeout=300, json={
            "messages": [{"role": "user", "content": "Where is my blue bike parked?"}], "strategy": "rag",
            "max_tokens": 32, "temperature": 0.0})
        answer.raise_for_status()
        fields = _status_mb(server.proc.pid)
        n_ctx = httpx.get(f"{server.base_url}/health", timeout=10).json()["model"]["n_ctx"]
    finally:
        server.stop()
    return {"profile": profile, "kv_cache_type": kv, "n_ctx": n_ctx, "peak_mb": fields["VmHWM"],
            "rss_mb": fields["VmRSS"], "idle_rss_mb": idle["VmRSS"], "idle_peak_mb": idle["VmHWM"]}


def _status_mb(pid: int) -> dict:
    """VmHWM and VmRSS of a process, in MB."""
    status = Path(f"/proc/{pid}/status").read_text()
    return {line.split(":")[0]: int(line.split()[1]) // 1024 for line in status.splitlines()
            if line.startswith(("VmHWM", "VmRSS"))}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokens", type=int, default=2048)
    parser.add_argument("--quick", action="store_true", help="256 tokens, two profiles, their default KV cache only")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "kv_cache.json")
    args = parser.parse_args(argv)
    profiles = ["raspberry-pi-4-2gb", "laptop-16gb"] if args.quick else list_profiles()
    work = Path(tempfile.mkdtemp(prefix="bench-kv-"))
    report = {"quality": quality(256 if args.quick else args.tokens, work), "memory": []}
    for name in profiles:
        configured = load_profile(name).kv_cache_type
        for kv in sorted({configured} if args.quick else {configured, "f16"}):
            row = peak_memory_mb(name, kv, work)
            row["profile_default"] = kv == configured
            report["memory"].append(row)
            print(json.dumps(row), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(json.dumps(report["quality"], indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
