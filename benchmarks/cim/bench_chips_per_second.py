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
dependencies would replace the CPU torch); without it only cim_backend is measured and the
JSON says why.

Scaling: each tool is also timed at several chip counts (``--sweep``, ``--aihwkit-sweep``) so
that the report can fit seconds against chips on a log-log scale.

Usage: ``python benchmarks/cim/bench_chips_per_second.py [--quick] [--chips 200] [--repeats 3] [--out FILE]``
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from benchmarks.report.common import machine  # noqa: E402
from cim_backend.config import get_preset  # noqa: E402
from cim_backend.data import load_digits_split  # noqa: E402
from cim_backend.models import lenet_digits  # noqa: E402
from cim_backend.network import calibrate_input_ranges, convert, evaluate_chips, program_model, to_digital  # noqa: E402
from cim_backend.train import TrainConfig, train  # noqa: E402

PROG_COEFF_US = 2.06  # see the module docstring: matches 0.1166 * max|W| per weight
# The CIM engine's tokens/s need the language model loaded (tens of seconds): its own
# benchmark measures them, against digital torch and llama.cpp in the same run.
# --quick: seconds in total, one repeat; what the tests and `make bench-quick` run.
QUICK = {"epochs": 4, "chips": 30, "aihwkit_chips": 10, "sweep": [1, 10, 30], "aihwkit_sweep": [1, 3, 10], "repeats": 1}


def _trained_lenet(split, epochs: int) -> torch.nn.Module:
    torch.manual_seed(0)
    model = convert(lenet_digits(), get_preset("ideal"))
    train(model, split, "digital", TrainConfig(epochs=epochs))
    return to_digital(model)


def _cim_model(model, split, read_noise: bool):
    """The trained LeNet on the RRAM 4-bit preset, input ranges calibrated (not timed)."""
    cim = convert(model, replace(get_preset("rram-4b"), read_noise=read_noise))
    calibrate_input_ranges(cim, split.x_train)
    return cim


def bench_cim(cim, split, chips: int) -> tuple[float, float, float]:
    """Wall and CPU seconds to program and evaluate ``chips`` chips in one vectorised batch; mean accuracy."""
    start, cpu = time.perf_counter(), time.process_time()
    program_model(cim, range(chips), seed=1)
    acc = evaluate_chips(cim, split.x_test, split.y_test, chips)
    return time.perf_counter() - start, time.process_time() - cpu, float(acc.mean())


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


def _aihwkit_or_reason(model) -> tuple[object | None, dict]:
    """aihwkit's twin of ``model`` and its facts, or None and why it cannot be built here."""
    try:
        import aihwkit

        return _aihwkit_model(model), {"available": True, "version": aihwkit.__version__}
    except ImportError as exc:
        reason = f"aihwkit not importable ({exc}); install: pip install --no-deps aihwkit==1.1.0"
    except Exception as exc:  # noqa: BLE001 - any incompatibility (torch version) leaves cim_backend measured
        reason = f"aihwkit could not build the network: {type(exc).__name__}: {exc}"
    return None, {"available": False, "reason": reason}


@torch.no_grad()
def bench_aihwkit(analog, split, chips: int) -> tuple[float, float, float]:
    """Wall and CPU seconds to program and evaluate ``chips`` chips, one at a time; mean accuracy."""
    accs = []
    start, cpu = time.perf_counter(), time.process_time()
    for _ in range(chips):
        analog.program_analog_weights()
        pred = analog(split.x_test).argmax(-1)
        accs.append(float((pred == split.y_test).float().mean()))
    return time.perf_counter() - start, time.process_time() - cpu, statistics.mean(accs)


def _median_rate(fn, chips: int, repeats: int) -> dict:
    # CPU seconds too: with one thread they stay close to an idle machine's wall time when
    # other processes share the cores.
    runs = [fn(chips) for _ in range(repeats)]
    seconds = statistics.median(r[0] for r in runs)
    return {"chips": chips, "median_seconds": seconds, "chips_per_second": chips / seconds,
            "median_cpu_seconds": statistics.median(r[1] for r in runs), "mean_accuracy": runs[-1][2],
            "runs_seconds": [r[0] for r in runs]}


def _sweep(fn, counts: list[int], headline: int, repeats: int) -> tuple[list[dict], dict]:
    """Every count in ``counts`` plus ``headline``, timed; returns the rows and the headline row."""
    rows = [_median_rate(fn, chips, repeats) for chips in sorted(set(counts) | {headline})]
    return rows, next(r for r in rows if r["chips"] == headline)


def _counts(text: str) -> list[int]:
    counts = [int(c) for c in text.split(",") if c.strip()]
    if not counts or min(counts) < 1:
        raise argparse.ArgumentTypeError(f"chip counts must be positive integers: {text!r}")
    return counts


def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help=f"a few seconds: {QUICK}")
    p.add_argument("--chips", type=int, default=200, help="chips per cim_backend batch (headline row)")
    p.add_argument("--aihwkit-chips", type=int, default=50, help="chips for aihwkit's loop (headline row)")
    p.add_argument("--sweep", type=_counts, default=[1, 10, 100, 1000], help="cim_backend chip counts to time")
    p.add_argument("--aihwkit-sweep", type=_counts, default=[1, 10, 100], help="aihwkit chip counts to time")
    p.add_argument("--epochs", type=int, default=10, help="digital training epochs of the shared LeNet")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=1, help="torch threads for both tools (default 1; 0: torch default)")
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/cim_chips_per_second.json"))
    args = p.parse_args(argv)
    if args.quick:
        for key, value in QUICK.items():
            setattr(args, key, value)
    return args


def _print(results: dict) -> None:
    for name in ("cim_backend", "cim_backend_read_noise", "aihwkit"):
        r = results[name]
        if r.get("chips_per_second"):
            print(f"{name:24s} {r['chips_per_second']:9.1f} chips/s  (median {r['median_seconds']:.3f} s, "
                  f"{r['median_cpu_seconds']:.3f} CPU s for {r['chips']} chips, mean acc {r['mean_accuracy']:.4f})")
        elif r.get("reason"):
            print(f"{name:24s} n/a: {r['reason']}")
    if results["speedup_vs_aihwkit"]:
        print(f"speed-up vs aihwkit: {results['speedup_vs_aihwkit']:.2f}x")
    for tool, rows in results["sweep"].items():
        print(f"{tool} sweep: " + ", ".join(f"{r['chips']} chips {r['median_seconds']:.3f} s" for r in rows))


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, print a table and write JSON."""
    started = time.perf_counter()
    args = _parse(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    split = load_digits_split()
    model = _trained_lenet(split, args.epochs)
    print(f"trained in {time.perf_counter() - started:.1f} s")
    cim = _cim_model(model, split, read_noise=False)
    cim_sweep, cim_head = _sweep(lambda n: bench_cim(cim, split, n), args.sweep, args.chips, args.repeats)
    cim_noisy = _cim_model(model, split, read_noise=True)
    results = {
        "machine": machine(),
        "threads": torch.get_num_threads(),
        "quick": args.quick,
        "repeats": args.repeats,
        "workload": {"network": f"LeNet (cim_backend.models.lenet_digits), trained {args.epochs} epochs, seed 0",
                     "test_images": int(split.x_test.shape[0]),
                     "noise": "programming noise only, weight std 0.1166 of max|W| (module docstring)",
                     "aihwkit_prog_coeff_us": PROG_COEFF_US},
        "cim_backend": cim_head,
        "cim_backend_read_noise": _median_rate(lambda n: bench_cim(cim_noisy, split, n), args.chips, args.repeats),
        "sweep": {"cim_backend": cim_sweep},
        "speedup_vs_aihwkit": None,
    }
    analog, facts = _aihwkit_or_reason(model)
    results["aihwkit"] = facts
    if analog is not None:
        rows, head = _sweep(lambda n: bench_aihwkit(analog, split, n), args.aihwkit_sweep, args.aihwkit_chips, args.repeats)
        results["aihwkit"].update(head)
        results["sweep"]["aihwkit"] = rows
        results["speedup_vs_aihwkit"] = cim_head["chips_per_second"] / head["chips_per_second"]
    results["wall_seconds"] = time.perf_counter() - started
    _print(results)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
