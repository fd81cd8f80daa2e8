"""Decode throughput, time to first token and resident memory of `assistant serve`,
against direct llama-cpp-python in one process and against `python -m llama_cpp.server`
(the peer), on the same model, threads, context and prompts, runs interleaved.

Every run generates exactly ``--tokens`` tokens (end-of-sequence tokens are banned with
logit_bias in all three), greedy, so the three do the same work.

    .venv/bin/python benchmarks/bench_serving.py            # full: 5 rounds x 3 prompts, 128 tokens
    .venv/bin/python benchmarks/bench_serving.py --quick    # smoke: 1 round x 2 prompts, 16 tokens
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psutil

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from assistant.models.catalog import resolve_model  # noqa: E402
from assistant.settings import Settings  # noqa: E402
from tests.helpers import free_port  # noqa: E402

PROMPTS = [
    "Explain in detail how a bicycle gear system works.",
    "Write a story about a lighthouse keeper who finds a message in a bottle.",
    "Describe the water cycle step by step for a school class.",
]
BANNED = {0: -100, 1: -100, 2: -100}  # SmolLM2: <|endoftext|>, <|im_start|>, <|im_end|>


def stream_http(base_url: str, prompt: str, tokens: int) -> dict:
    """One streamed chat completion: client-side time to first content and decode rate."""
    body = {"model": "default", "messages": [{"role": "user", "content": prompt}], "max_tokens": tokens,
            "temperature": 0.0, "stream": True, "logit_bias": {str(k): v for k, v in BANNED.items()}}
    start = time.perf_counter()
    first, last, pieces = None, None, 0
    with httpx.stream("POST", f"{base_url}/v1/chat/completions", json=body, timeout=600) as response:
        response.raise_for_status()
        for line in response.iter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            delta = json.loads(line[6:])["choices"]
            if delta and delta[0]["delta"].get("content"):
                now = time.perf_counter()
                first = first or now
                last = now
                pieces += 1
    return {"ttft_s": first - start, "decode_tps": (tokens - 1) / (last - first) if last > first else 0.0}


class Direct:
    """llama-cpp-python in this process: the ceiling for any server built on it."""

    def __init__(self, model_path: str, n_ctx: int, threads: int):
        import llama_cpp

        from assistant.models.build_info import amx_guard_needed, cpu_flags, llama_build_features
        from assistant.models.llama_loader import load_llama

        # The same llama-cpp-python build as the server and the peer (deploy/build-llama.sh:
        # no AMX path), loaded the way the engine loads it.
        extra_buffers = not amx_guard_needed(cpu_flags(), llama_build_features())
        self.llm = load_llama(extra_buffers, model_path=model_path, n_ctx=n_ctx, n_threads=threads,
                              n_threads_batch=threads, verbose=False)
        ids, biases = list(BANNED), list(BANNED.values())

        def ban(_ids, scores):
            scores[ids] += biases
            return scores

        self.processor = llama_cpp.LogitsProcessorList([ban])

    def run_generate(self, prompt: str, tokens: int) -> dict:
        """The raw token loop (``Llama.generate``): the ceiling, with no text handling at all."""
        messages = [{"role": "user", "content": prompt}]
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        template = self.llm.metadata["tokenizer.chat_template"]
        formatter = Jinja2ChatFormatter(template, eos_token="", bos_token="")
        prompt_text = formatter(messages=messages).prompt
        ids = self.llm.tokenize(prompt_text.encode(), add_bos=True, special=True)
        self.llm.reset()  # no KV prefix reuse from the previous run: each mode starts cold
        start = time.perf_counter()
        first = last = None
        produced = 0
        for _token in self.llm.generate(ids, temp=0.0, top_k=40, top_p=0.95, min_p=0.0, repeat_penalty=1.1,
                                        logits_processor=self.processor):
            now = time.perf_counter()
            first = first or now
            last = now
            produced += 1
            if produced >= tokens:
                break
        return {"ttft_s": first - start, "decode_tps": (tokens - 1) / (last - first) if last > first else 0.0}

    def run(self, prompt: str, tokens: int) -> dict:
        """``create_chat_completion`` streaming: the usual high-level API."""
        messages = [{"role": "user", "content": prompt}]
        self.llm.reset()
        start = time.perf_counter()
        first = last = None
        for chunk in self.llm.create_chat_completion(messages, max_tokens=tokens, temperature=0.0, stream=True,
                                                     logits_processor=self.processor):
            if chunk["choices"][0]["delta"].get("content"):
                now = time.perf_counter()
                first = first or now
                last = now
        return {"ttft_s": first - start, "decode_tps": (tokens - 1) / (last - first) if last > first else 0.0}


def start_server(cmd: list[str], port: int, env: dict) -> subprocess.Popen:
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=REPO)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.3)
    proc.kill()
    raise RuntimeError(f"server did not start: {cmd}")


def rss_mb(proc: subprocess.Popen) -> float:
    """Resident memory of a server process and its children."""
    main = psutil.Process(proc.pid)
    return sum(p.memory_info().rss for p in [main, *main.children(recursive=True)]) / 2**20


def summarize(samples: list[dict]) -> dict:
    return {"decode_tps_median": statistics.median(s["decode_tps"] for s in samples),
            "ttft_ms_median": 1000 * statistics.median(s["ttft_s"] for s in samples), "runs": len(samples)}


def main(argv: list[str] | None = None) -> int:
    """Run the comparison and print a markdown table; write JSON to --out."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--n-ctx", type=int, default=2048)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "serving.json")
    args = parser.parse_args(argv)
    rounds, tokens, prompts = (1, 16, PROMPTS[:2]) if args.quick else (args.rounds, args.tokens, PROMPTS)

    home = Path(tempfile.mkdtemp(prefix="bench-serving-"))
    model_path = str(resolve_model("default", Settings(home=home)).path)
    env = {**os.environ, "ASSISTANT_HOME": str(home)}
    ours_port, peer_port = free_port(), free_port()
    ours = start_server([sys.executable, "-m", "assistant.cli", "serve", "--port", str(ours_port), "--n-ctx",
                         str(args.n_ctx), "--n-threads", str(args.threads), "--log-level", "warning"], ours_port, env)
    # The peer runs the same llama-cpp-python build (made by deploy/build-llama.sh, without
    # llama.cpp's AMX path), so both sides use the same kernels on any CPU.
    peer = start_server([sys.executable, "-m", "llama_cpp.server", "--model", model_path, "--port", str(peer_port),
                         "--n_ctx", str(args.n_ctx), "--n_threads", str(args.threads), "--n_threads_batch",
                         str(args.threads), "--verbose", "False"], peer_port, env)
    direct = Direct(model_path, args.n_ctx, args.threads)
    samples: dict[str, list[dict]] = {"assistant serve": [], "direct Llama.generate": [],
                                      "direct create_chat_completion": [], "llama_cpp.server": []}
    try:
        for _ in range(rounds):
            for prompt in prompts:  # interleaved: each prompt goes to all three in turn
                samples["assistant serve"].append(stream_http(f"http://127.0.0.1:{ours_port}", prompt, tokens))
                samples["direct Llama.generate"].append(direct.run_generate(prompt, tokens))
                samples["direct create_chat_completion"].append(direct.run(prompt, tokens))
                samples["llama_cpp.server"].append(stream_http(f"http://127.0.0.1:{peer_port}", prompt, tokens))
                print(f"round {_ + 1}/{rounds}: " + ", ".join(f"{name} {runs[-1]['decode_tps']:.0f} tok/s"
                                                              for name, runs in samples.items()),
                      file=sys.stderr, flush=True)
        memory = {"assistant serve": rss_mb(ours), "llama_cpp.server": rss_mb(peer)}
    finally:
        for proc in (ours, peer):
            proc.terminate()
            proc.wait(timeout=30)
    results = {name: summarize(runs) for name, runs in samples.items()}
    for name, mb in memory.items():
        results[name]["rss_mb"] = mb
    ours_tps = results["assistant serve"]["decode_tps_median"]
    ratios = {"vs_direct_generate_decode": ours_tps / results["direct Llama.generate"]["decode_tps_median"],
              "vs_direct_chat_completion_decode":
                  ours_tps / results["direct create_chat_completion"]["decode_tps_median"],
              "vs_peer_decode": ours_tps / results["llama_cpp.server"]["decode_tps_median"],
              "vs_peer_ttft": results["assistant serve"]["ttft_ms_median"] / results["llama_cpp.server"]["ttft_ms_median"]}
    report = {"config": {"rounds": rounds, "tokens": tokens, "prompts": len(prompts), "threads": args.threads,
                         "n_ctx": args.n_ctx, "model": "smollm2-135m-instruct Q4_1"},
              "results": results, "ratios": ratios}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print("| server | decode tok/s (median) | TTFT ms (median) | RSS MB |\n|---|---|---|---|")
    for name, row in results.items():
        rss = f"{row['rss_mb']:.0f}" if "rss_mb" in row else "n/a (in-process)"
        print(f"| {name} | {row['decode_tps_median']:.1f} | {row['ttft_ms_median']:.0f} | {rss} |")
    print(f"\nratios: {json.dumps({k: round(v, 3) for k, v in ratios.items()})}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
