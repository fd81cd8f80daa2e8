"""Monte-Carlo chips per second: cim_backend (vectorised) vs IBM aihwkit (one chip at a time).

Both simulate the same LeNet (digits, 8x8) and evaluate the 360-image test split on every
chip. A "chip" is one programming-noise realisation followed by a full test-set evaluation.

Equivalent noise setting (programming noise only, so that both tools do the same thing):

* cim_backend: RRAM preset, 4-bit weights on two 2-bit devices per polarity, differential
  pairs, device sigma 0.1 of the range -> weight std ``sqrt(2) * 0.1 * sqrt(17) / 5 = 0.1166``
  of ``max|W|``; 8-bit DAC; ideal ADC; read noise off.
* aihwkit: ``TorchInferenceRPUConfig`` with ``PCMLikeNoiseModel(prog_coeff=[c0, 0, 0])``, drift
  and read noise off, one differential conductance pair per weight (g_max 25 uS, both devices
  get ``c0`` of noise) -> weight std ``sqrt(2) * c0 / 25`` of ``max|W|``; ``c0 = 2.06 uS``
  matches 0.1166. Input resolution 8 bits, no output noise or ADC. aihwkit does not bit-slice
  weights, so its weights are unquantized: a small difference that favours aihwkit's speed.

A second cim_backend row keeps read noise on (fresh every inference), which aihwkit's torch
tile cannot express per MVM. aihwkit needs ``pip install --no-deps aihwkit`` (its declared
dependencies would replace the CPU torch); without it only cim_backend is measured.

Usage: ``python benchmarks/cim/bench_chips_per_second.py [--chips 200] [--repeats 3] [--out FILE]``
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from dataclasses import replace
from pathlib import Path

import torch

from cim_backend.config import get_preset
from cim_backend.data import load_digits_split
from cim_backend.models import lenet_digits
from cim_backend.network import calibrate_input_ranges, convert, evaluate_chips, program_model, to_digital
from cim_backend.train import TrainConfig, train

PROG_COEFF_US = 2.06  # see the module docstring: matches 0.1166 * max|W| per weight


def _trained_lenet(split) -> torch.nn.Module:
    torch.manual_seed(0)
    model = convert(lenet_digits(), get_preset("ideal"))
    train(model, split, "digital", TrainConfig(epochs=10))
    return to_digital(model)


def bench_cim(model, split, chips: int, read_noise: bool) -> tuple[float, float]:
    """Seconds to program and evaluate ``chips`` chips in one vectorised batch; mean accuracy."""
    cfg = replace(get_preset("rram-4b"), read_noise=read_noise)
    cim = convert(model, cfg)
    calibrate_input_ranges(cim, split.x_train)
    start = time.perf_counter()
    program_model(cim, range(chips), seed=1)
    acc = evaluate_chips(cim, split.x_test, split.y_test, chips)
    return time.perf_counter() - start, float(acc.mean())


def _aihwkit_model(model):
    from aihwkit.inference import PCMLikeNoiseModel
    from aihwkit.nn.conversion import convert_to_analog
    from aihwkit.simulator.configs import TorchInferenceRPUConfig

    rpu = TorchInferenceRPUConfig()
    rpu.noise_model = PCMLikeNoiseModel(prog_coeff=[PROG_COEFF_US, 0.0, 0.0], drift_scale=0.0, read_noise_scale=0.0)
    rpu.forward.out_noise = 0.0
    rpu.forward.inp_res = 1 / 255
    rpu.forward.out_res = -1
    analog = convert_to_analog(model, rpu)
    analog.eval()
    return analog


@torch.no_grad()
def bench_aihwkit(model, split, chips: int) -> tuple[float, float]:
    """Seconds to program and evaluate ``chips`` chips, one at a time; mean accuracy."""
    analog = _aihwkit_model(model)
    accs = []
    start = time.perf_counter()
    for _ in range(chips):
        analog.program_analog_weights()
        pred = analog(split.x_test).argmax(-1)
        accs.append(float((pred == split.y_test).float().mean()))
    return time.perf_counter() - start, statistics.mean(accs)


def _median_rate(fn, chips: int, repeats: int) -> dict:
    runs = [fn() for _ in range(repeats)]
    seconds = statistics.median(r[0] for r in runs)
    return {"chips": chips, "median_seconds": seconds, "chips_per_second": chips / seconds, "mean_accuracy": runs[-1][1]}


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, print a table and write JSON."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--chips", type=int, default=200, help="chips per cim_backend batch")
    p.add_argument("--aihwkit-chips", type=int, default=50, help="chips for aihwkit's loop")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=1, help="torch threads for both tools (default 1; 0: torch default)")
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/cim_chips_per_second.json"))
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    split = load_digits_split()
    model = _trained_lenet(split)
    results = {
        "threads": torch.get_num_threads(),
        "cim_backend": _median_rate(lambda: bench_cim(model, split, args.chips, False), args.chips, args.repeats),
        "cim_backend_read_noise": _median_rate(lambda: bench_cim(model, split, args.chips, True), args.chips, args.repeats),
    }
    try:
        results["aihwkit"] = _median_rate(lambda: bench_aihwkit(model, split, args.aihwkit_chips), args.aihwkit_chips, args.repeats)
        results["speedup_vs_aihwkit"] = results["cim_backend"]["chips_per_second"] / results["aihwkit"]["chips_per_second"]
    except ImportError:
        results["aihwkit"] = None
        print("aihwkit not installed: pip install --no-deps aihwkit")
    for name in ("cim_backend", "cim_backend_read_noise", "aihwkit"):
        r = results[name]
        if r:
            print(f"{name:24s} {r['chips_per_second']:9.1f} chips/s  (median {r['median_seconds']:.3f} s for {r['chips']} chips, mean acc {r['mean_accuracy']:.4f})")
    if results.get("speedup_vs_aihwkit"):
        print(f"speed-up vs aihwkit: {results['speedup_vs_aihwkit']:.1f}x")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
