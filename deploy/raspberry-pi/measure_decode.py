"""Decode speed of a catalog model on this machine, for the table in this folder's README.

Generates 128 tokens (EOS banned, so every run decodes the same count) from a short prompt
at context 512 and prints the best and median tokens/s over ``--runs`` runs; the time to the
first token (prompt processing) is left out.

    python deploy/raspberry-pi/measure_decode.py default --runs 5 --threads 4
"""
from __future__ import annotations

import argparse
import statistics
import time

from llama_cpp import Llama

from assistant.models.catalog import resolve_model
from assistant.settings import Settings

PROMPT = "The history of the bicycle begins"


def decode_rate(llm: Llama, max_tokens: int) -> float:
    """Tokens/s after the first token of one greedy completion."""
    llm.reset()
    first, count = None, 0
    for _ in llm.create_completion(PROMPT, max_tokens=max_tokens, temperature=0.0, stream=True,
                                   logit_bias={llm.token_eos(): -1e9}):
        count += 1
        if first is None:
            first = time.perf_counter()
    return (count - 1) / (time.perf_counter() - first)


def main() -> None:
    """Load the model once, run the completions, print one line."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="catalog name (default, gemma3-270m) or a .gguf path")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--max-tokens", type=int, default=128)
    args = parser.parse_args()
    model = resolve_model(args.model, Settings())
    llm = Llama(model_path=str(model.path), n_ctx=512, n_threads=args.threads, verbose=False, seed=1)
    decode_rate(llm, 8)  # warm-up: page the weights in
    rates = [decode_rate(llm, args.max_tokens) for _ in range(args.runs)]
    print(f"{model.name}: {args.max_tokens} tokens, {args.threads} threads, {args.runs} runs: "
          f"best {max(rates):.1f} tok/s, median {statistics.median(rates):.1f} tok/s")


if __name__ == "__main__":
    main()
