"""The KV cache type against quality and memory, for the default model.

Quality: the model reads the same text (this repository's README, about 2,000 tokens) with
an f16 KV cache and with q8_0 (K and V, flash attention); per position, the KL divergence
of the next-token distribution from f16's, the top-1 agreement, and each run's perplexity.
Memory: ``assistant serve`` on each profile, peak resident memory (VmHWM) after one RAG
answer, with the profile's KV cache type and with f16, and with the whole context allocated
at load (``--initial-context 0``) against the default context that grows on demand.

    python benchmarks/bench_kv_cache.py            # quality at 2,048 tokens + memory for every profile
    python benchmarks/bench_kv_cache.py --quick    # 256 tokens, two profiles (what the tests run)
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from assistant.profiles import list_profiles, load_profile  # noqa: E402
from assistant.settings import Settings  # noqa: E402
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


def peak_memory_mb(profile: str, kv: str, work: Path, initial_context: Optional[int] = None) -> dict:
    """VmHWM / VmRSS of ``assistant serve`` on ``profile`` after one RAG answer
    (``initial_context``: the server's --initial-context; None: its default)."""
    label = f"{profile}-{kv}-{'default' if initial_context is None else initial_context}"
    home = work / f"home-{label}"
    home.mkdir()
    notes = work / f"notes-{label}"
    notes.mkdir()
    index_notes(home, notes, SAMPLE_NOTES)
    extra = [] if initial_context is None else ["--initial-context", str(initial_context)]
    server = ServerProcess(home, "--profile", profile, "--kv-cache-type", kv, *extra)
    try:
        server.wait_ready(300)
        idle = _status_mb(server.proc.pid)
        answer = httpx.post(f"{server.base_url}/v1/chat/completions", timeout=300, json={
            "messages": [{"role": "user", "content": "Where is my blue bike parked?"}], "strategy": "rag",
            "max_tokens": 32, "temperature": 0.0})
        answer.raise_for_status()
        fields = _status_mb(server.proc.pid)
        model = httpx.get(f"{server.base_url}/health", timeout=10).json()["model"]
    finally:
        server.stop()
    return {"profile": profile, "kv_cache_type": kv, "n_ctx": model["n_ctx"],
            "n_ctx_allocated": model["n_ctx_allocated"], "whole_context_at_load": initial_context == 0,
            "peak_mb": fields["VmHWM"],
            "rss_mb": fields["VmRSS"], "idle_rss_mb": idle["VmRSS"], "idle_peak_mb": idle["VmHWM"]}


def growth_cost(repeats: int) -> dict:
    """What growing the context costs a request: in laptop-16gb's context (8,192 tokens, q8_0),
    a 1,876-token prompt (this README's start), then a 3,526-token follow-up that starts with
    it; the follow-up's wall time in a context started at INITIAL_CONTEXT (2,048 tokens: it
    grows once, keeping the cached prefix) and in the whole context allocated at load.
    Medians of ``repeats``."""
    from assistant.models.catalog import resolve_model
    from assistant.models.context_growth import INITIAL_CONTEXT
    from assistant.models.engine import Engine
    from assistant.models.generation import SamplingParams

    text, model = (ROOT / "README.md").read_text(), resolve_model("default", Settings())
    first, follow_up = text[:6000], text[:11000]
    samples: dict[str, list] = {"grown_s": [], "whole_s": [], "growth_s": []}
    for _ in range(repeats):
        for initial in (INITIAL_CONTEXT, 0):
            engine = Engine(model, n_ctx=8192, n_threads=2, kv_cache_type="q8_0", initial_context=initial)
            list(engine.generate(engine.text_prompt(first, SamplingParams(max_tokens=1, temperature=0.0))))
            prompt = engine.text_prompt(follow_up, SamplingParams(max_tokens=16, temperature=0.0))
            started = time.perf_counter()
            list(engine.generate(prompt))
            samples["grown_s" if initial else "whole_s"].append(time.perf_counter() - started)
            if initial:
                assert engine.context_growths == 1, "the follow-up should grow the context once"
                samples["growth_s"].append(engine.last_growth_s)
            del engine
    medians = {f"median_{k}": float(np.median(v)) for k, v in samples.items()}
    return {"repeats": repeats, "first_chars": len(first), "follow_up_chars": len(follow_up), **medians,
            "samples": samples}


def speed(repeats: int) -> dict:
    """What q8_0 costs in time: this README's first 4,000 and 11,000 characters (1,223 and
    3,526 tokens) as prompts in a 4,096-token context, then 32 greedy tokens; f16 and q8_0
    engines interleaved (2 threads, no prefix reuse), medians of ``repeats`` of time to
    first token and decode tokens per second."""
    from assistant.models.catalog import resolve_model
    from assistant.models.engine import Engine
    from assistant.models.generation import SamplingParams
    from benchmarks.bench_bandwidth import end_token_ids

    model, text = resolve_model("default", Settings()), (ROOT / "README.md").read_text()
    engines = {kv: Engine(model, n_ctx=4096, n_threads=2, kv_cache_type=kv, initial_context=0, prefix_reuse=False)
               for kv in ("f16", "q8_0")}
    prompts = {"short": text[:4000], "long": text[:11000]}
    samples = {f"{kv}_{p}": {"ttft_s": [], "decode_tps": [], "prompt_tokens": 0} for kv in engines for p in prompts}
    # End tokens banned, so every run decodes its 32 tokens (one model: the same ids for both engines).
    params = SamplingParams(max_tokens=32, temperature=0.0,
                            logit_bias=tuple((t, -100.0) for t in end_token_ids(engines["f16"]._llm)))
    for _ in range(repeats):
        for name, prompt in prompts.items():
            for kv, engine in engines.items():
                stats = list(engine.generate(engine.text_prompt(prompt, params)))[-1]
                run = samples[f"{kv}_{name}"]
                run["ttft_s"].append(stats.time_to_first_token_s)
                run["decode_tps"].append(stats.decode_tokens_per_s)
                run["prompt_tokens"] = stats.prompt_tokens
    medians = {f"{run}_median_{k}": float(np.median(v)) for run, s in samples.items()
               for k, v in s.items() if isinstance(v, list)}
    return {"repeats": repeats, "prompt_tokens": {p: samples[f"f16_{p}"]["prompt_tokens"] for p in prompts},
            **medians, "samples": samples}


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
        runs = [(configured, None)]
        if not args.quick:  # the profile's cache type with the whole context at load, and f16
            runs += [(configured, 0)] + ([("f16", None)] if configured != "f16" else [])
        for kv, initial_context in runs:
            row = peak_memory_mb(name, kv, work, initial_context)
            row["profile_default"] = kv == configured and initial_context is None
            report["memory"].append(row)
            print(json.dumps(row), flush=True)
    if not args.quick:
        report["growth"], report["speed"] = growth_cost(5), speed(3)
        for key in ("growth", "speed"):
            print(json.dumps({k: v for k, v in report[key].items() if k != "samples"}), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(json.dumps(report["quality"], indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
