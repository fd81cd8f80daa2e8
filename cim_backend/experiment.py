"""The four deployment methods compared by the reproduction, at one variation sigma.

(a) plain training; (b) noise-injection training; (c) noise injection + selective
write-verify (SWIM) of the most sensitive weights, with the same number of verified weights
as the TSB; (d) TSB: noise injection to an early convergence, per-chip calibration of the
shared block against the read-back chip, write-verify of the block only.

Accuracy gap = (accuracy of the same flow on an ideal, variation-free chip) minus (mean
accuracy over the simulated chips). For (a)-(c) the ideal-chip flow is the digital model;
for (d) it is the early backbone whose block is calibrated on the digital backbone, so the
gap isolates what device variation costs each method.
"""

from __future__ import annotations

import copy
import time
from dataclasses import asdict, dataclass, field, replace

import torch
from torch import nn

from .calibration import CalibrationConfig, calibrate_tsb
from .config import CIMConfig, ideal_config
from .cost import programming_cost
from .data import Split
from .network import calibrate_input_ranges, convert, evaluate_chips, evaluate_digital, program_model, to_digital
from .selective import sensitivity_scores, top_k_masks
from .train import TrainConfig, train
from .tsb import insert_tsb


@dataclass(frozen=True)
class MethodSettings:
    """Knobs shared by all methods (epochs, TSB width, calibration, chips)."""

    chips: int = 100
    epochs_full: int = 60
    epochs_early: int = 10
    tsb_width: int = 14
    calibration: CalibrationConfig = field(default_factory=CalibrationConfig)
    sensitivity: str = "hessian"
    reference_runs: int = 3
    seed: int = 0
    chip_seed: int = 1


@dataclass
class MethodResult:
    """Outcome of one method at one sigma."""

    method: str
    sigma: float
    digital_accuracy: float
    chip_accuracies: list[float]
    weights: int
    verified_weights: int
    train_seconds: float
    train_cpu_seconds: float
    pulses_per_chip: float
    verify_reads_per_chip: float
    program_time_s: float
    program_energy_j: float
    extra: dict = field(default_factory=dict)

    @property
    def mean(self) -> float:
        """Mean accuracy over chips."""
        return float(torch.tensor(self.chip_accuracies).mean())

    @property
    def std(self) -> float:
        """Std of accuracy over chips."""
        return float(torch.tensor(self.chip_accuracies).std())

    @property
    def gap(self) -> float:
        """Ideal-chip accuracy minus mean chip accuracy."""
        return self.digital_accuracy - self.mean

    @property
    def verified_fraction(self) -> float:
        """Write-verified weights over all crossbar weights."""
        return self.verified_weights / max(self.weights, 1)

    def summary(self) -> dict:
        """JSON-friendly dict (per-chip accuracies included)."""
        out = asdict(self)
        out.update(mean=self.mean, std=self.std, gap=self.gap, verified_fraction=self.verified_fraction)
        return out


def _program_and_eval(model: nn.Module, split: Split, cfg: CIMConfig, s: MethodSettings, masks=None):
    report = program_model(model, range(s.chips), s.chip_seed, masks)
    acc = evaluate_chips(model, split.x_test, split.y_test, s.chips)
    return report, acc


def _result(name, sigma, digital, acc, report, times, cfg, extra_weights=0, extra_verified=0, extra_pulses=0.0, extra_reads=0.0):
    """Assemble a MethodResult; ``times`` is ``(wall_seconds, cpu_seconds)`` of training."""
    pulses = report.pulses_per_chip + extra_pulses
    reads = report.verify_reads_per_chip + extra_reads
    cost = programming_cost(pulses, reads, cfg.device)
    return MethodResult(
        name, sigma, digital, acc.tolist(), report.weights + extra_weights, report.verified_weights + extra_verified,
        times[0], times[1], pulses, reads, cost.time_s, cost.energy_j,
    )


def train_plain(backbone: nn.Module, split: Split, s: MethodSettings) -> tuple[nn.Module, tuple[float, float]]:
    """Digitally trained model (independent of sigma, so trained once per run)."""
    model = convert(backbone, ideal_config())
    res = train(model, split, "digital", TrainConfig(epochs=s.epochs_full, seed=s.seed))
    return to_digital(model), (res.seconds, res.cpu_seconds)


def run_plain(trained: nn.Module, seconds: tuple[float, float], split: Split, cfg: CIMConfig, s: MethodSettings) -> MethodResult:
    """(a) the digitally trained model programmed as is."""
    model = convert(trained, cfg)
    calibrate_input_ranges(model, split.x_train)
    digital = evaluate_digital(model, split.x_test, split.y_test)
    report, acc = _program_and_eval(model, split, cfg, s)
    return _result("plain", cfg.sigma_rel, digital, acc, report, seconds, cfg)


def run_noise_injection(backbone: nn.Module, split: Split, cfg: CIMConfig, s: MethodSettings, epochs: int):
    """Noise-injection training for ``epochs``; returns the model and (wall, CPU) seconds."""
    model = convert(backbone, cfg)
    res = train(model, split, "noise", TrainConfig(epochs=epochs, seed=s.seed))
    return model, (res.seconds, res.cpu_seconds)


def run_ni_and_swim(ni: nn.Module, seconds: tuple[float, float], split: Split, cfg: CIMConfig, s: MethodSettings, budget: int):
    """(b) noise injection, and (c) the same model with ``budget`` sensitive weights verified."""
    digital = evaluate_digital(ni, split.x_test, split.y_test)
    ni_model = copy.deepcopy(ni)
    report, acc = _program_and_eval(ni_model, split, cfg, s)
    res_ni = _result("noise_injection", cfg.sigma_rel, digital, acc, report, seconds, cfg)
    start, cpu = time.perf_counter(), time.process_time()
    masks = top_k_masks(sensitivity_scores(ni, split.x_train, split.y_train, s.sensitivity), budget)
    rank = (time.perf_counter() - start, time.process_time() - cpu)
    report, acc = _program_and_eval(copy.deepcopy(ni), split, cfg, s, masks)
    res_swim = _result("selective_wv", cfg.sigma_rel, digital, acc, report, (seconds[0] + rank[0], seconds[1] + rank[1]), cfg)
    return res_ni, res_swim


def _tsb_on_ideal_chip(early: nn.Module, split: Split, cfg: CIMConfig, s: MethodSettings) -> float:
    """Accuracy of the TSB flow on a variation-free chip (the TSB's 'digital' reference).

    Averaged over ``s.reference_runs`` calibration seeds: a single calibration's test accuracy
    moves by a test sample or two with the seed, as large as the gaps being measured.
    """
    ideal = ideal_config(cfg)
    accs = []
    for run in range(s.reference_runs):
        model = convert(to_digital(early), ideal)
        program_model(model, [0], s.chip_seed)
        block = insert_tsb(model, s.tsb_width, ideal)
        cal = replace(s.calibration, seed=s.calibration.seed + run)
        calibrate_tsb(model, block, split.x_train, split.y_train, [0], cal)
        accs.append(float(evaluate_chips(model, split.x_test, split.y_test, 1)[0]))
    return sum(accs) / len(accs)


def _time_one_chip_calibration(early: nn.Module, split: Split, cfg: CIMConfig, s: MethodSettings) -> tuple[float, float]:
    """(wall, CPU) seconds to calibrate a single chip (what one deployment pays)."""
    model = copy.deepcopy(early)
    program_model(model, [0], s.chip_seed)
    block = insert_tsb(model, s.tsb_width, cfg)
    res = calibrate_tsb(model, block, split.x_train, split.y_train, [0], s.calibration)
    return res.seconds, res.cpu_seconds


def run_tsb(early: nn.Module, early_seconds: tuple[float, float], split: Split, cfg: CIMConfig, s: MethodSettings) -> MethodResult:
    """(d) TSB on every chip, calibrated per chip (vectorised across chips)."""
    reference = _tsb_on_ideal_chip(early, split, cfg, s)
    one_chip = _time_one_chip_calibration(early, split, cfg, s)
    model = copy.deepcopy(early)
    report = program_model(model, range(s.chips), s.chip_seed)
    block = insert_tsb(model, s.tsb_width, cfg)
    cal = calibrate_tsb(model, block, split.x_train, split.y_train, list(range(s.chips)), s.calibration)
    acc = evaluate_chips(model, split.x_test, split.y_test, s.chips)
    pt = block.programmed
    k2 = block.crossbar_weights
    res = _result(
        "tsb", cfg.sigma_rel, reference, acc, report, (early_seconds[0] + one_chip[0], early_seconds[1] + one_chip[1]), cfg,
        extra_weights=k2, extra_verified=k2, extra_pulses=float(pt.pulses.mean()), extra_reads=float(pt.verify_reads.mean()),
    )
    res.extra = {
        "backbone_seconds": early_seconds[0],
        "backbone_cpu_seconds": early_seconds[1],
        "calibration_seconds_one_chip": one_chip[0],
        "calibration_cpu_seconds_one_chip": one_chip[1],
        "calibration_seconds_all_chips": cal.seconds,
        "early_backbone_digital_accuracy": evaluate_digital(early, split.x_test, split.y_test),
        "tsb_width": s.tsb_width,
        "tsb_digital_biases": s.tsb_width,
    }
    return res


def run_all_methods(backbone: nn.Module, plain: tuple[nn.Module, tuple[float, float]], split: Split, cfg: CIMConfig, s: MethodSettings) -> dict[str, MethodResult]:
    """All four methods at ``cfg``'s sigma, from the same initial backbone."""
    res_plain = run_plain(plain[0], plain[1], split, cfg, s)
    ni, ni_seconds = run_noise_injection(backbone, split, cfg, s, s.epochs_full)
    budget = s.tsb_width * s.tsb_width
    res_ni, res_swim = run_ni_and_swim(ni, ni_seconds, split, cfg, s, budget)
    early, early_seconds = run_noise_injection(backbone, split, cfg, s, s.epochs_early)
    res_tsb = run_tsb(early, early_seconds, split, cfg, s)
    return {r.method: r for r in (res_plain, res_ni, res_swim, res_tsb)}
