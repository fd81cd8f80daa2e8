"""Cost of a real ADC: the tiled crossbar path against the fast (one-matmul) path.

With an ideal ADC a CIM layer is one batched matmul with the chips' effective weights (the
fast path). With ``adc_bits`` set, every tile/slice/polarity/column partial sum has to be
quantized on its own (:func:`cim_backend.crossbar.crossbar_mvm`): a chip's partial sums are
``P*S*tiles`` times its outputs, so this path cannot be as cheap; this script measures by how
much it is slower.

Workload (the one the ratio was tuned on): LeNet on 8x8 digits, trained with noise injection
on the ``rram-4b`` preset, then evaluated on the 360 test images by every chip of one
vectorised batch, once on ``rram-4b`` (fast path) and once on ``rram-4b-adc`` (same devices,
6-bit ADC). Programming is not timed; read noise is fresh at every forward on both paths.
Each path is timed ``--repeats`` times, interleaved so that a load change on a shared machine
hits both, and the medians are reported.

Usage: ``python benchmarks/cim/bench_adc_path.py [--quick] [--chips 50] [--repeats 3] [--out FILE]``
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from benchmarks.report.common import machine, write_json  # noqa: E402
from cim_backend.config import get_preset  # noqa: E402
from cim_backend.data import load_digits_split  # noqa: E402
from cim_backend.models import lenet_digits  # noqa: E402
from cim_backend.network import calibrate_input_ranges, convert, evaluate_chips, program_model, to_digital  # noqa: E402
from cim_backend.train import TrainConfig, train  # noqa: E402

FAST, ADC = "rram-4b", "rram-4b-adc"
# --quick: a few seconds in total (the timings are then only indicative).
QUICK = {"epochs": 2, "chips": 10}


def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help=f"a few seconds: {QUICK}")
    p.add_argument("--chips", type=int, default=50, help="chips evaluated in one vectorised batch")
    p.add_argument("--epochs", type=int, default=10, help="noise-injection training epochs of the LeNet")
    p.add_argument("--repeats", type=int, default=3, help="timed evaluations per path (median reported)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1; 0: torch default)")
    p.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    args = p.parse_args(argv)
    if args.quick:
        args.epochs, args.chips = QUICK["epochs"], min(args.chips, QUICK["chips"])
    if args.chips < 1 or args.repeats < 1:
        p.error("--chips and --repeats must be positive")
    return args


def _programmed(model: torch.nn.Module, split, preset: str, chips: int) -> torch.nn.Module:
    """``model`` on ``preset``, DAC ranges calibrated, programmed onto ``chips`` chips (not timed)."""
    cim = convert(model, get_preset(preset))
    calibrate_input_ranges(cim, split.x_train)
    program_model(cim, range(chips), seed=1)
    return cim


def run(args: argparse.Namespace) -> dict:
    """Train, program both presets, time their evaluations; return the results dict.

    ``accuracy`` lists the mean accuracy over chips of every timed evaluation (fresh read
    noise each time, so they differ a little).
    """
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    split = load_digits_split()
    trained = convert(lenet_digits(), get_preset(FAST))
    train(trained, split, "noise", TrainConfig(epochs=args.epochs))
    digital = to_digital(trained)
    models = {preset: _programmed(digital, split, preset, args.chips) for preset in (FAST, ADC)}
    for preset, cim in models.items():  # warm-up: first-call allocations and kernel selection
        evaluate_chips(cim, split.x_test[:32], split.y_test[:32], args.chips)
    seconds: dict[str, list[float]] = {FAST: [], ADC: []}
    accuracy: dict[str, list[float]] = {FAST: [], ADC: []}
    for _ in range(args.repeats):
        for preset, cim in models.items():
            start = time.perf_counter()
            acc = evaluate_chips(cim, split.x_test, split.y_test, args.chips)
            seconds[preset].append(time.perf_counter() - start)
            accuracy[preset].append(float(acc.mean()))
    fast, adc = statistics.median(seconds[FAST]), statistics.median(seconds[ADC])
    return {
        "quick": bool(args.quick),
        "chips": args.chips,
        "epochs": args.epochs,
        "repeats": args.repeats,
        "threads": torch.get_num_threads(),
        "test_images": int(split.x_test.shape[0]),
        "adc_bits": get_preset(ADC).adc_bits,
        "fast_path": {"preset": FAST, "median_seconds": fast, "seconds": seconds[FAST], "accuracy": accuracy[FAST]},
        "adc_path": {"preset": ADC, "median_seconds": adc, "seconds": seconds[ADC], "accuracy": accuracy[ADC]},
        "ratio": adc / fast,
        "machine": machine(),
    }


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, print the three numbers, write the JSON if ``--out`` is given."""
    args = _parse(argv)
    res = run(args)
    print(f"LeNet/digits, {res['chips']} chips x {res['test_images']} images, {res['threads']} thread(s), "
          f"median of {res['repeats']}")
    print(f"fast path ({FAST}):          {res['fast_path']['median_seconds']:.3f} s")
    print(f"ADC path ({ADC}, {res['adc_bits']}-bit): {res['adc_path']['median_seconds']:.3f} s")
    print(f"ratio ADC / fast:              {res['ratio']:.2f}x")
    write_json(args.out, res)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
