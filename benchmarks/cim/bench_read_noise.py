"""Cost of read noise per generated token: device-referred against output-referred.

Device-referred read noise draws a fresh value for every weight (in distribution, every
device) on every forward; output-referred read noise draws one per output with the same
variance for the input vector at hand (``CIMConfig.output_referred_read_noise``). For a
language model decoding one token at a time the two give the same output distribution, so
the question is only what each costs.

Workload: the seven linear layers of one SmolLM2-135M decoder layer (q, k, v, o: 576 -> 576,
192, 192, 576; gate, up: 576 -> 1536; down: 1536 -> 576), random weights, 4-bit weights on
2-bit RRAM devices with per-output-channel scales, one chip, one token per forward (decode).
Both modes are timed on the fast path (ideal ADC) and on the tiled 6-bit ADC path, ``--repeats``
times interleaved, medians reported; seconds per token for the whole model are the per-layer
figure times 30 (SmolLM2 has 30 such layers; embeddings and LM head stay digital and are not
counted). Programming is not timed.

Usage: ``python benchmarks/cim/bench_read_noise.py [--quick] [--tokens 64] [--repeats 5] [--out FILE]``
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from benchmarks.report.common import machine, write_json  # noqa: E402
from cim_backend.config import get_preset  # noqa: E402
from cim_backend.network import calibrate_input_ranges, convert, program_model  # noqa: E402

# (in, out) of SmolLM2-135M's linear layers in one decoder layer.
SMOLLM2_LAYER = [(576, 576), (576, 192), (576, 192), (576, 576), (576, 1536), (576, 1536), (1536, 576)]
DECODER_LAYERS = 30
MODES = {"device-referred": False, "output-referred": True}


def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="8 tokens, 2 repeats (indicative only)")
    p.add_argument("--tokens", type=int, default=64, help="tokens decoded per timed run")
    p.add_argument("--repeats", type=int, default=5, help="timed runs per mode and path (median reported)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1; 0: torch default)")
    p.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    args = p.parse_args(argv)
    if args.quick:
        args.tokens, args.repeats = 8, 2
    if args.tokens < 1 or args.repeats < 1:
        p.error("--tokens and --repeats must be positive")
    return args


class _LayerStack(nn.Module):
    """Each linear layer of one decoder layer, fed its own input (shapes only matter here)."""

    def __init__(self):
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(i, o, bias=False) for i, o in SMOLLM2_LAYER)

    def forward(self, inputs: list[torch.Tensor]) -> list[torch.Tensor]:
        return [layer(x) for layer, x in zip(self.layers, inputs)]


def _programmed(digital: _LayerStack, preset: str, output_referred: bool, calib: list[torch.Tensor]) -> nn.Module:
    config = replace(get_preset(preset), per_channel_scales=True, output_referred_read_noise=output_referred)
    cim = convert(digital, config)
    calibrate_input_ranges(cim, calib)
    program_model(cim, [0], seed=0)
    return cim


def _seconds_per_token(model: nn.Module, tokens: list[list[torch.Tensor]]) -> float:
    start = time.perf_counter()
    with torch.no_grad():
        for inputs in tokens:
            model(inputs)
    return (time.perf_counter() - start) / len(tokens)


def run(args: argparse.Namespace) -> dict:
    """Program the stack in every (path, mode), time decoding; return the results dict."""
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    digital = _LayerStack()
    calib = [torch.randn(32, i) for i, _ in SMOLLM2_LAYER]
    tokens = [[torch.randn(1, i) for i, _ in SMOLLM2_LAYER] for _ in range(args.tokens)]
    models = {(path, mode): _programmed(digital, preset, flag, calib)
              for path, preset in (("fast", "rram-4b"), ("adc", "rram-4b-adc")) for mode, flag in MODES.items()}
    for model in models.values():  # warm-up
        _seconds_per_token(model, tokens[:2])
    seconds: dict[tuple[str, str], list[float]] = {key: [] for key in models}
    for _ in range(args.repeats):
        for key, model in models.items():
            seconds[key].append(_seconds_per_token(model, tokens))
    digital_s = statistics.median(_seconds_per_token(digital, tokens) for _ in range(args.repeats))
    results = {f"{path}/{mode}": {"median_s_per_layer_token": statistics.median(v), "samples": v,
                                  "model_s_per_token": statistics.median(v) * DECODER_LAYERS}
               for (path, mode), v in seconds.items()}
    ratios = {path: results[f"{path}/device-referred"]["median_s_per_layer_token"]
              / results[f"{path}/output-referred"]["median_s_per_layer_token"] for path in ("fast", "adc")}
    return {"quick": bool(args.quick), "tokens": args.tokens, "repeats": args.repeats,
            "threads": torch.get_num_threads(), "weights_per_layer": sum(i * o for i, o in SMOLLM2_LAYER),
            "digital_s_per_layer_token": digital_s, "results": results,
            "speedup_output_over_device": ratios, "machine": machine()}


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, print a table, write the JSON if ``--out`` is given."""
    args = _parse(argv)
    res = run(args)
    print(f"one SmolLM2 decoder layer's linears ({res['weights_per_layer']:,} weights), 1 chip, 1 token per forward, "
          f"{res['threads']} thread(s), median of {res['repeats']} x {res['tokens']} tokens")
    print(f"digital torch: {1000 * res['digital_s_per_layer_token']:.2f} ms per layer-token")
    for key, r in res["results"].items():
        print(f"{key:24s} {1000 * r['median_s_per_layer_token']:8.2f} ms per layer-token, "
              f"x30 layers = {r['model_s_per_token']:.3f} s per token")
    for path, ratio in res["speedup_output_over_device"].items():
        print(f"{path} path: output-referred is {ratio:.1f}x faster than device-referred")
    write_json(args.out, res)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
