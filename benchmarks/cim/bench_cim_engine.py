"""The CIM engine's own speed: tokens/s of simulated decoding against digital torch and the
llama.cpp engine, on the same prompt and greedy tokens.

Engines: ``digital`` (the dequantized model in torch, transformers' KV cache, no chip: the
``cim`` engine run as its ``digital`` variant);
``cim`` (its 210 projections on one chip: RRAM, 4-bit weights with per-channel scales, 8-bit
DAC, output-referred read noise, ideal ADC, sigma 0.02); ``cim-adc`` (the same with a 6-bit
ADC on the tiled path); ``llama.cpp`` (the served GGUF as the product runs it). Each decodes
``--tokens`` tokens ``--repeats`` times (greedy, no stop), interleaved; medians of decode
tokens/s (first token excluded) are reported, with the ratio to llama.cpp. Programming is
timed once per chip.

Usage: ``python benchmarks/cim/bench_cim_engine.py [--quick] [--tokens 32] [--repeats 3] [--out FILE]``
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from benchmarks.report.common import machine, write_json  # noqa: E402

PROMPT = "Write three sentences about trains."


def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="4 tokens, 1 repeat, no ADC engine (indicative only)")
    p.add_argument("--tokens", type=int, default=32)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args(argv)
    if args.quick:
        args.tokens, args.repeats = 4, 1
    return args


def _engines(args: argparse.Namespace, loaded) -> dict:
    """name -> (engine, programming seconds, the variant it runs as)."""
    from cim_backend.config import CIMConfig

    from assistant.models.catalog import resolve_model
    from assistant.models.cim_engine import CIMEngine
    from assistant.models.engine import Engine
    from assistant.models.hf_model import load_hf_model
    from assistant.settings import Settings

    resolved = resolve_model("default", Settings(home=Path(tempfile.mkdtemp())))
    model, tokenizer = loaded or load_hf_model(resolved.path, args.threads)
    chip = CIMConfig(per_channel_scales=True, output_referred_read_noise=True).with_sigma(0.02)
    configs = {"cim": chip}
    if not args.quick:
        configs["cim-adc"] = CIMConfig(**{**chip.__dict__, "adc_bits": 6})
    engines = {}
    for name, config in configs.items():
        start = time.perf_counter()
        engines[name] = (CIMEngine(resolved, config, n_ctx=512, n_threads=args.threads,
                                   loaded=(copy.deepcopy(model), tokenizer)), time.perf_counter() - start, "cim")
    engines["digital"] = (engines["cim"][0], 0.0, "digital")
    engines["llama.cpp"] = (Engine(resolved, n_ctx=512, n_threads=args.threads), 0.0, None)
    return engines


def _decode_rate(engine, tokens: int, variant) -> float:
    from contextlib import nullcontext

    from assistant.models.chat_format import ChatMessage
    from assistant.models.generation import GenerationStats, SamplingParams

    params = SamplingParams(max_tokens=tokens, temperature=0.0, repeat_penalty=1.0, seed=0)
    prompt = engine.chat_prompt([ChatMessage("user", PROMPT)], params)
    with engine.variant(variant) if variant else nullcontext():
        stats = [e for e in engine.generate(prompt) if isinstance(e, GenerationStats)][0]
    return stats.decode_tokens_per_s


def run(args: argparse.Namespace, loaded=None) -> dict:
    """Build the engines (``loaded``: a ``(torch_model, tokenizer)`` to copy instead of
    loading the GGUF again), time their decoding; return the results dict."""
    import torch

    torch.set_num_threads(args.threads)
    engines = _engines(args, loaded)
    rates: dict[str, list[float]] = {name: [] for name in engines}
    for _ in range(args.repeats):
        for name, (engine, _, variant) in engines.items():
            rates[name].append(_decode_rate(engine, args.tokens, variant))
    reference = statistics.median(rates["llama.cpp"])
    results = {name: {"decode_tokens_per_s": statistics.median(v), "samples": v, "program_s": engines[name][1],
                      "ratio_to_llama_cpp": statistics.median(v) / reference if reference else None}
               for name, v in rates.items()}
    return {"quick": bool(args.quick), "tokens": args.tokens, "repeats": args.repeats, "threads": args.threads,
            "results": results, "machine": machine()}


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, print a table, write the JSON if ``--out`` is given."""
    args = _parse(argv)
    res = run(args)
    print(f"SmolLM2-135M, {res['tokens']} greedy tokens, {res['threads']} threads, median of {res['repeats']}")
    for name, r in res["results"].items():
        print(f"{name:10s} {r['decode_tokens_per_s']:8.1f} tokens/s ({r['ratio_to_llama_cpp']:.3f}x llama.cpp), "
              f"programmed in {r['program_s']:.1f} s")
    write_json(args.out, res)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
