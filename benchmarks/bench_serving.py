"""Generation through `assistant serve` against the same model run directly in this process
and against the peers, on the same build, threads, context and prompts, runs interleaved.

Modes, per catalog model:
- ``assistant serve`` on its OpenAI endpoint, and on its Ollama endpoint (``/api/chat``);
- ``direct Llama.generate``: the raw token loop in this process, the ceiling for any server
  built on llama-cpp-python; ``direct create_chat_completion``: its usual high-level API;
- ``llama_cpp.server``: llama-cpp-python's own server;
- ``llama-server (C++)``: llama.cpp's server built from the llama.cpp sources inside the
  llama-cpp-python source package (``deploy/build-llama-server.sh``), when built.
Ollama itself cannot be installed offline here, so it is not among the peers.

Workloads: ``chat`` (three prompts, ``--tokens`` generated, end-of-generation tokens banned
with logit_bias where the API has it, greedy) for decode rate; ``rag`` (one RAG-sized
prompt, 600-1,200 tokens of note passages, 16 tokens) for time to first token and prefill.
Every prompt starts with a per-round tag so no server can answer it from its prompt cache.

Definitions: client decode rate = completion tokens / (time of the last content byte - time
of the first); TTFT = request start to the first content byte; prefill rate = prompt tokens
/ TTFT. Ratios are per round (the median over the round's prompts of each side), then the
median of the per-round ratios with a percentile-bootstrap 95% interval over rounds.

    .venv/bin/python benchmarks/bench_serving.py            # full: 5 rounds, both models
    .venv/bin/python benchmarks/bench_serving.py --quick    # smoke: default model, 2 chat rounds, 1 RAG round
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
from typing import Callable

import httpx
import psutil

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from assistant.models.catalog import resolve_model  # noqa: E402
from assistant.settings import Settings  # noqa: E402
from benchmarks.report.common import bootstrap_ci, machine  # noqa: E402
from tests.helpers import free_port  # noqa: E402

PROMPTS = [
    "Explain in detail how a bicycle gear system works.",
    "Write a story about a lighthouse keeper who finds a message in a bottle.",
    "Describe the water cycle step by step for a school class.",
]
NOTES = REPO / "benchmarks" / "router" / "eval" / "notes"
RAG_TOKENS = 16
OURS, OLLAMA = "assistant serve", "assistant serve (Ollama API)"
GENERATE, CHAT_API = "direct Llama.generate", "direct create_chat_completion"
PEER, CPP_PEER = "llama_cpp.server", "llama-server (C++)"


def rag_prompt(question: str, passages: int = 6) -> str:
    """A RAG-shaped prompt: numbered note passages, then the question (as the product's RAG
    prompt lays them out)."""
    notes = sorted(NOTES.rglob("*.md"))[:passages]
    body = "\n\n".join(f"[{i + 1}] {path.stem}\n{path.read_text()[:1100]}" for i, path in enumerate(notes))
    return f"Answer from these notes and cite them.\n\n{body}\n\nQuestion: {question}"


def timed_stream(lines, content_of: Callable[[str], tuple[str, int]], start: float, fallback_tokens: int) -> dict:
    """Time to the first content byte and decode rate from a stream of lines; ``content_of``
    gives (content, completion tokens when the line reports them, else 0)."""
    first = last = None
    counted = 0
    for line in lines:
        content, tokens = content_of(line)
        counted = tokens or counted
        if content:
            now = time.perf_counter()
            first = first or now
            last = now
    if first is None:
        raise RuntimeError("the stream carried no content")
    tokens = counted or fallback_tokens
    return {"ttft_s": first - start, "decode_tps": tokens / (last - first) if last > first else 0.0,
            "completion_tokens": tokens}


def openai_content(line: str) -> tuple[str, int]:
    if not line.startswith("data: ") or line == "data: [DONE]":
        return "", 0
    chunk = json.loads(line[6:])
    choices = chunk.get("choices") or [{}]
    return choices[0].get("delta", {}).get("content") or "", 0


def ollama_content(line: str) -> tuple[str, int]:
    if not line.strip():
        return "", 0
    chunk = json.loads(line)
    return chunk.get("message", {}).get("content") or "", chunk.get("eval_count", 0) if chunk.get("done") else 0


def openai_stream(base_url: str, model: str, banned: dict[int, float], **extra) -> Callable[[str, int], dict]:
    def run(prompt: str, tokens: int) -> dict:
        body = {"model": model, "messages": [{"role": "user", "content": prompt}], "max_tokens": tokens,
                "temperature": 0.0, "stream": True, "logit_bias": {str(k): v for k, v in banned.items()}, **extra}
        start = time.perf_counter()
        with httpx.stream("POST", f"{base_url}/v1/chat/completions", json=body, timeout=600) as response:
            response.raise_for_status()
            return timed_stream(response.iter_lines(), openai_content, start, tokens)
    return run


def ollama_stream(base_url: str, model: str) -> Callable[[str, int], dict]:
    """The Ollama API has no logit_bias: the answer may end early; its own eval_count is used."""
    def run(prompt: str, tokens: int) -> dict:
        body = {"model": model, "messages": [{"role": "user", "content": prompt}], "stream": True,
                "options": {"num_predict": tokens, "temperature": 0.0}}
        start = time.perf_counter()
        with httpx.stream("POST", f"{base_url}/api/chat", json=body, timeout=600) as response:
            response.raise_for_status()
            return timed_stream(response.iter_lines(), ollama_content, start, tokens)
    return run


class Direct:
    """llama-cpp-python in this process, loaded the way the engine loads it."""

    def __init__(self, model_path: str, n_ctx: int, threads: int, flash_attention: bool):
        import llama_cpp

        from assistant.models.build_info import amx_guard_needed, cpu_flags, llama_build_features
        from assistant.models.llama_loader import load_llama

        extra_buffers = not amx_guard_needed(cpu_flags(), llama_build_features())
        self.llm = load_llama(extra_buffers, model_path=model_path, n_ctx=n_ctx, n_threads=threads,
                              n_threads_batch=threads, flash_attn=flash_attention, verbose=False)
        vocab = self.llm._model.vocab
        self.banned = {t: -100.0 for t in range(self.llm.n_vocab()) if llama_cpp.llama_vocab_is_eog(vocab, t)}
        ids, biases = list(self.banned), list(self.banned.values())

        def ban(_ids, scores):
            scores[ids] += biases
            return scores

        self.processor = llama_cpp.LogitsProcessorList([ban])
        template = self.llm.metadata.get("tokenizer.chat_template")
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        self.formatter = Jinja2ChatFormatter(template, eos_token="", bos_token="") if template else None

    def prompt_ids(self, prompt: str) -> list[int]:
        messages = [{"role": "user", "content": prompt}]
        text = self.formatter(messages=messages).prompt if self.formatter else f"User: {prompt}\nAssistant:"
        return self.llm.tokenize(text.encode(), add_bos=True, special=True)

    def run_generate(self, prompt: str, tokens: int) -> dict:
        """The raw token loop (``Llama.generate``), cold (no prefix reuse between runs)."""
        ids = self.prompt_ids(prompt)
        self.llm.reset()
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
        return {"ttft_s": first - start, "decode_tps": produced / (last - first) if last > first else 0.0,
                "completion_tokens": produced}

    def run_chat(self, prompt: str, tokens: int) -> dict:
        """``create_chat_completion`` streaming, cold."""
        self.llm.reset()
        start = time.perf_counter()
        chunks = self.llm.create_chat_completion([{"role": "user", "content": prompt}], max_tokens=tokens,
                                                 temperature=0.0, stream=True, logits_processor=self.processor)
        lines = (chunk["choices"][0]["delta"].get("content") or "" for chunk in chunks)
        return timed_stream(lines, lambda content: (content, 0), start, tokens)


def start_server(cmd: list[str], port: int, env: dict, ready_path: str = "/v1/models") -> subprocess.Popen:
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=REPO)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}: {' '.join(cmd)}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}{ready_path}", timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    proc.kill()
    raise RuntimeError(f"server did not start: {cmd}")


def peak_rss_mb(proc: subprocess.Popen) -> dict:
    """Resident and peak resident memory (VmRSS, VmHWM) of a server process and its children."""
    main = psutil.Process(proc.pid)
    rss = hwm = 0
    for p in [main, *main.children(recursive=True)]:
        status = Path(f"/proc/{p.pid}/status").read_text()
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        rss += int(fields["VmRSS"].split()[0])
        hwm += int(fields["VmHWM"].split()[0])
    return {"rss_mb": rss / 1024, "peak_rss_mb": hwm / 1024}


def cpp_server_binary() -> Path | None:
    """llama.cpp's own server, when deploy/build-llama-server.sh has built it."""
    script = REPO / "deploy" / "build-llama-server.sh"
    if not script.exists():
        return None
    done = subprocess.run(["bash", str(script), "--print-path"], capture_output=True, text=True, cwd=REPO)
    path = Path(done.stdout.strip()) if done.returncode == 0 and done.stdout.strip() else None
    return path if path and path.is_file() else None


def per_round_ratio(ours: list[list[float]], theirs: list[list[float]]) -> dict:
    """Median of per-round ratios (each round: the median over its prompts) and a bootstrap
    95% interval of that median over rounds."""
    ratios = [statistics.median(a) / statistics.median(b) for a, b in zip(ours, theirs) if a and b]
    low, high = bootstrap_ci(ratios)
    return {"median": statistics.median(ratios), "ci95": [low, high], "per_round": ratios}


def bench_model(model: str, args, rounds: int, chat_tokens: int, prompts: list[str], env: dict,
                rag_rounds: int) -> dict:
    """All modes for one model, interleaved round by round; the RAG workload in the first
    ``rag_rounds`` rounds."""
    resolved = resolve_model(model, Settings(home=Path(env["ASSISTANT_HOME"])))
    model_path, flash = str(resolved.path), resolved.flash_attention
    # every mode attends as the engine does with an f16 cache (the catalog's choice per model)
    direct = Direct(model_path, args.n_ctx, args.threads, flash)
    banned = direct.banned
    servers: dict[str, subprocess.Popen] = {}
    modes: dict[str, Callable[[str, int], dict]] = {}
    ours_port, ollama_port, peer_port = free_port(), free_port(), free_port()
    try:
        servers[OURS] = start_server(
            [sys.executable, "-m", "assistant.cli", "serve", "--port", str(ours_port), "--ollama-port",
             str(ollama_port), "--model", model, "--n-ctx", str(args.n_ctx), "--n-threads", str(args.threads),
             # the peers' KV cache and batch (the profile's q8_0 and 128 are measured elsewhere)
             "--kv-cache-type", "f16", "--n-batch", "512", "--log-level", "warning"], ours_port, env)
        modes[OURS] = openai_stream(f"http://127.0.0.1:{ours_port}", model, banned)
        modes[OLLAMA] = ollama_stream(f"http://127.0.0.1:{ollama_port}", model)
        modes[GENERATE] = direct.run_generate
        modes[CHAT_API] = direct.run_chat
        servers[PEER] = start_server(
            [sys.executable, "-m", "llama_cpp.server", "--model", model_path, "--port", str(peer_port), "--n_ctx",
             str(args.n_ctx), "--n_threads", str(args.threads), "--n_threads_batch", str(args.threads),
             "--flash_attn", str(flash), "--verbose", "False"], peer_port, env)
        modes[PEER] = openai_stream(f"http://127.0.0.1:{peer_port}", model_path, banned)
        binary = cpp_server_binary()
        if binary is not None:
            cpp_port = free_port()
            servers[CPP_PEER] = start_server(
                [str(binary), "--model", model_path, "--host", "127.0.0.1", "--port", str(cpp_port), "-c",
                 str(args.n_ctx), "-t", str(args.threads), "-tb", str(args.threads), "-np", "1", "--no-webui",
                 "--flash-attn", "on" if flash else "off"],  # its default, auto, would decide for itself
                cpp_port, env, ready_path="/health")
            # Its defaults differ from llama-cpp-python's: no repeat penalty (1.1 there), and a
            # prompt cache; the same work on both sides needs them said.
            modes[CPP_PEER] = openai_stream(f"http://127.0.0.1:{cpp_port}", model, banned, repeat_penalty=1.1,
                                            cache_prompt=False)
        work = {"chat": (prompts, chat_tokens), "rag": ([rag_prompt("Which notes mention a deadline?")], RAG_TOKENS)}
        samples = {w: {m: [[] for _ in range(rounds)] for m in modes} for w in work}
        for r in range(rounds):
            for workload, (texts, tokens) in work.items():
                if workload == "rag" and r >= rag_rounds:
                    continue
                for text in texts:
                    for i, (name, run) in enumerate(modes.items()):  # interleaved: each prompt to every mode
                        tagged = f"(run {r + 1}.{i}) {text}"  # no prompt-cache hit: two modes share a server
                        prompt_tokens = len(direct.prompt_ids(tagged))
                        sample = run(tagged, tokens)
                        sample["prompt_tokens"] = prompt_tokens
                        sample["prefill_tps"] = prompt_tokens / sample["ttft_s"]
                        samples[workload][name][r].append(sample)
            print(f"{model} round {r + 1}/{rounds}: " + ", ".join(
                f"{name} {samples['chat'][name][r][-1]['decode_tps']:.0f} tok/s" for name in modes),
                file=sys.stderr, flush=True)
        memory = {name: peak_rss_mb(proc) for name, proc in servers.items()}
    finally:
        for proc in servers.values():
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
    return {**summarize(model, samples, memory, binary is not None), "flash_attention": flash}


def summarize(model: str, samples: dict, memory: dict, cpp_built: bool) -> dict:
    """Medians per mode and workload, and the per-round ratios against the references."""
    def flat(workload: str, mode: str, key: str) -> list[float]:
        return [s[key] for run in samples[workload][mode] for s in run]

    def by_round(workload: str, mode: str, key: str) -> list[list[float]]:
        return [[s[key] for s in run] for run in samples[workload][mode]]

    results = {}
    for workload, modes in samples.items():
        results[workload] = {mode: {"decode_tps_median": statistics.median(flat(workload, mode, "decode_tps")),
                                    "ttft_ms_median": 1000 * statistics.median(flat(workload, mode, "ttft_s")),
                                    "prefill_tps_median": statistics.median(flat(workload, mode, "prefill_tps")),
                                    "prompt_tokens": statistics.median(flat(workload, mode, "prompt_tokens")),
                                    "runs": len(flat(workload, mode, "ttft_s"))} for mode in modes}
    ratios = {"decode_vs_direct_generate": per_round_ratio(by_round("chat", OURS, "decode_tps"),
                                                           by_round("chat", GENERATE, "decode_tps"))}
    for peer in (PEER, CPP_PEER):
        if peer in samples["chat"]:
            ratios[f"decode_vs_{peer}"] = per_round_ratio(by_round("chat", OURS, "decode_tps"),
                                                          by_round("chat", peer, "decode_tps"))
            for workload in ("chat", "rag"):
                ratios[f"{workload}_ttft_vs_{peer}"] = per_round_ratio(by_round(workload, OURS, "ttft_s"),
                                                                       by_round(workload, peer, "ttft_s"))
    return {"results": results, "memory": memory, "ratios": ratios,
            "cpp_server": "built" if cpp_built else "not built: run `make llama-server` (deploy/build-llama-server.sh)"}


def main(argv: list[str] | None = None) -> int:
    """Run the comparison, print a table per model and write JSON to --out."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--n-ctx", type=int, default=2048)
    parser.add_argument("--models", default="default,gemma3-270m")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "serving.json")
    args = parser.parse_args(argv)
    # quick: a smoke run of every mode and figure. Two chat rounds give the per-round ratio its
    # interval; one RAG round (its prefill of 600-1,200 tokens in every mode is most of the run's time).
    if args.quick:
        rounds, rag_rounds, tokens, prompts, models = 2, 1, 16, PROMPTS[:1], ["default"]
    else:
        rounds, tokens, prompts, models = args.rounds, args.tokens, PROMPTS, args.models.split(",")
        rag_rounds = rounds
    home = Path(tempfile.mkdtemp(prefix="bench-serving-"))
    env = {**os.environ, "ASSISTANT_HOME": str(home)}
    report = {"config": {"rounds": rounds, "rag_rounds": rag_rounds, "tokens": tokens, "prompts": len(prompts), "threads": args.threads,
                         "n_ctx": args.n_ctx, "rag_tokens": RAG_TOKENS, "quick": args.quick},
              "machine": machine(), "models": {}}
    for model in models:
        report["models"][model] = bench_model(model, args, rounds, tokens, prompts, env, rag_rounds)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    for model, data in report["models"].items():
        print(f"\n{model}\n| mode | decode tok/s | RAG TTFT ms | RAG prefill tok/s |\n|---|---|---|---|")
        for mode, row in data["results"]["chat"].items():
            rag = data["results"]["rag"][mode]
            print(f"| {mode} | {row['decode_tps_median']:.1f} | {rag['ttft_ms_median']:.0f} | "
                  f"{rag['prefill_tps_median']:.0f} |")
        for name, ratio in data["ratios"].items():
            print(f"{name}: {ratio['median']:.3f} (95% CI {ratio['ci95'][0]:.3f}-{ratio['ci95'][1]:.3f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
