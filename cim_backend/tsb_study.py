"""One fold of the TSB study: every method on the same chips, every choice made on validation.

For a network and a fold (:mod:`cim_backend.folds`): the digital reference (plain training,
epochs chosen on validation) is the one common reference; then, at each variation sigma, the
methods run on the same test chips (same chip seed, so each chip's device draws are shared and
comparisons are paired):

* ``plain``: the digital reference programmed as is;
* ``noise_injection``: noise-injection training, epochs chosen on validation chips;
* ``swv@<m>x`` / ``swv@all``: the NI model with selective write-verify of ``m`` times the
  TSB's crossbar weights (and of all weights), the selection (sensitivity, magnitude or
  random) chosen per budget on validation chips; every budget at the main sigma and at
  ``budget_sigmas``, 1x and all at the others;
* ``tsb``: TSB on a noise-injection backbone, with backbone epochs, block width ``k`` and
  fitting steps chosen on validation chips;
* at the main sigma (networks in ``extended``) also ``tsb_bias_only`` (A = 0), ``tsb_shared``
  (one block fitted on other chips, the same block on every chip), ``bias`` and
  ``last_layer`` (per-chip fitting without write-verify), ``tsb_k<k>`` for every width, and
  accuracy after conductance drift.

Each method returns a 0/1 matrix ``correct[chip, test image]`` plus its costs; intervals are
computed over all folds by :mod:`cim_backend.stats`.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field, replace

import numpy as np
import torch
from torch import nn

from . import chip_tuning as ct
from .config import CIMConfig, get_preset, ideal_config
from .cost import devices_per_chip, programming_cost, readback_cost
from .drift import drifted_model
from .folds import Fold
from .layers import Mode
from .models import build_network, weight_count
from .network import calibrate_input_ranges, chip_logits, convert, evaluate_digital, program_model, to_digital
from .selective import sensitivity_scores, top_k_masks
from .train import TrainConfig, train

VAL_CHIP_BASE = 10_000  # validation chips never share an id (hence device draws) with test chips
CAL_CHIP_BASE = 20_000  # chips the shared block is fitted on


@dataclass(frozen=True)
class StudySettings:
    """Everything one run of the study needs (see ``FULL`` and ``QUICK`` in reproduce)."""

    folds: int = 5
    fold_limit: int | None = None
    chips: int = 20
    val_chips: int = 4
    sigmas: tuple[float, ...] = (0.05, 0.1, 0.15, 0.2)
    main_sigma: float = 0.1
    preset: str = "rram-4b"
    adc_bits: int | None = 6
    stuck_rate: float = 0.001
    plain_epochs: tuple[int, ...] = (10, 20, 30, 45)
    ni_epochs: tuple[int, ...] = (5, 10, 20, 30)
    tsb_backbone_epochs: tuple[int, ...] = (10, 30)
    tsb_widths: tuple[int, ...] = (8, 14, 20)
    fit: ct.FitConfig = field(default_factory=ct.FitConfig)
    budgets: tuple[int, ...] = (1, 2, 5, 10, 20, 50)
    budget_sigmas: tuple[float, ...] = (0.1, 0.2)  # sigmas with the whole budget sweep (the others: 1x and all)
    selections: tuple[str, ...] = ("sensitivity", "magnitude", "random")
    drift_seconds: tuple[float, ...] = (86_400.0, 30 * 86_400.0)
    extended: tuple[str, ...] = ("lenet", "vgg")  # networks that run the ablations at the main sigma
    sweep: tuple[str, ...] = ("lenet", "vgg")  # networks that run every sigma (the others: the main one)

    def config(self, sigma: float) -> CIMConfig:
        """The chip configuration at ``sigma``: preset, ADC, clipping and stuck-at faults."""
        base = get_preset(self.preset)
        cfg = replace(base, adc_bits=self.adc_bits, stuck_on_rate=self.stuck_rate, stuck_off_rate=self.stuck_rate)
        return cfg.with_sigma(sigma)


@dataclass
class MethodOutcome:
    """What one method did on one fold at one sigma."""

    correct: np.ndarray  # (chips, test images) bool
    verified_weights: int
    weights: int
    pulses_per_chip: float
    verify_reads_per_chip: float
    readback_reads_per_chip: float = 0.0
    train_seconds: float = 0.0  # one-off, shared by every chip
    per_chip_seconds: float = 0.0  # fitting time per chip (all chips fitted at once, divided)
    choice: dict = field(default_factory=dict)
    drift: dict[str, np.ndarray] = field(default_factory=dict)
    own_reference: float = float("nan")  # digital accuracy of the model this method programs


def chip_correct(model: nn.Module, x: torch.Tensor, y: torch.Tensor, chips: int) -> np.ndarray:
    """0/1 matrix of correct answers per chip and input."""
    model.eval()
    with torch.no_grad():
        pred = chip_logits(model, x, chips).argmax(-1)
    return (pred == y.unsqueeze(0)).numpy()


def _with_state(template: nn.Module, state: dict) -> nn.Module:
    model = copy.deepcopy(template)
    model.load_state_dict(state)
    return model


def _programmed(model: nn.Module, chip_ids, seed: int, masks=None):
    model = copy.deepcopy(model)
    report = program_model(model, chip_ids, seed, masks)
    return model, report


class FoldRunner:
    """Runs every method of one network on one fold (methods share this object's state)."""

    def __init__(self, network: str, fold: Fold, settings: StudySettings, log=print):
        self.network, self.fold, self.s, self.log = network, fold, settings, log
        self.test_ids = list(range(settings.chips))
        self.val_ids = list(range(VAL_CHIP_BASE, VAL_CHIP_BASE + settings.val_chips))
        self.cal_ids = list(range(CAL_CHIP_BASE, CAL_CHIP_BASE + settings.val_chips))
        self.seed = fold.chip_seed
        self.train_x, self.train_y = fold.final.x_train, fold.final.y_train
        self.val_x, self.val_y = fold.tune.x_test, fold.tune.y_test
        self.test_x, self.test_y = fold.final.x_test, fold.final.y_test
        self.adc_timing: dict[str, float] | None = None

    # -- evaluation helpers -------------------------------------------------------------
    def val_accuracy(self, model: nn.Module, masks=None) -> float:
        """Mean accuracy of ``model`` programmed on the validation chips, on validation images."""
        programmed, _ = _programmed(model, self.val_ids, self.seed, masks)
        return float(chip_correct(programmed, self.val_x, self.val_y, len(self.val_ids)).mean())

    def _outcome(self, model: nn.Module, report, **extra) -> MethodOutcome:
        out = MethodOutcome(
            chip_correct(model, self.test_x, self.test_y, len(self.test_ids)), report.verified_weights, report.weights,
            report.pulses_per_chip, report.verify_reads_per_chip, **extra,
        )
        if model is not None and "own_reference" not in extra:
            out.own_reference = self._digital_accuracy(model)
        return out

    def _digital_accuracy(self, model: nn.Module) -> float:
        """Test accuracy of ``model``'s weights run digitally (any block or offset at identity)."""
        with torch.no_grad():
            return float((to_digital(_strip(model))(self.test_x).argmax(-1) == self.test_y).float().mean())

    # -- the reference --------------------------------------------------------------------
    def reference(self) -> dict:
        """Digital training (epochs on validation): the common reference and plain's model."""
        torch.manual_seed(self.fold.seed)
        backbone = build_network(self.network)
        self.backbone = backbone
        model = convert(backbone, ideal_config())
        res = train(model, self.fold.final, "digital", TrainConfig(epochs=max(self.s.plain_epochs), seed=self.fold.seed), keep=self.s.plain_epochs)
        scores = {e: evaluate_digital(_with_state(model, st), self.val_x, self.val_y) for e, st in res.states.items()}
        best = max(scores, key=lambda e: (scores[e], -e))
        self.digital = to_digital(_with_state(model, res.states[best]))
        self.digital_seconds = res.seconds_at[best]
        with torch.no_grad():
            correct = (self.digital(self.test_x).argmax(-1) == self.test_y).numpy()
        self.log(f"  {self.network} fold {self.fold.index}: reference {best} epochs, val {scores[best]:.4f}, test {correct.mean():.4f}")
        return {"correct": correct, "epochs": best, "val": scores, "weights": weight_count(backbone)}

    # -- methods ------------------------------------------------------------------------
    def plain(self, cfg: CIMConfig) -> MethodOutcome:
        """(a) The reference programmed as is."""
        model = convert(self.digital, cfg)
        calibrate_input_ranges(model, self.train_x)
        programmed, report = _programmed(model, self.test_ids, self.seed)
        self.models["plain"] = programmed
        if self.adc_timing is None and cfg.adc_bits is not None:
            self.adc_timing = self.time_adc_path(programmed)
        return self._outcome(programmed, report, train_seconds=self.digital_seconds)

    def time_adc_path(self, model: nn.Module) -> dict[str, float]:
        """Seconds to evaluate the test chips through the tiled ADC path and the fast path."""
        chips = len(self.test_ids)
        start = time.perf_counter()
        chip_correct(model, self.test_x, self.test_y, chips)
        adc = time.perf_counter() - start
        with ct.ideal_adc(model):
            start = time.perf_counter()
            chip_correct(model, self.test_x, self.test_y, chips)
            fast = time.perf_counter() - start
        return {"adc_seconds": adc, "fast_seconds": fast, "ratio": adc / fast, "chips": chips, "images": len(self.test_y)}

    def noise_injection(self, cfg: CIMConfig) -> MethodOutcome:
        """(b) Noise-injection training; epochs chosen on validation chips."""
        template = convert(self.backbone, cfg)
        epochs = sorted(set(self.s.ni_epochs) | set(self.s.tsb_backbone_epochs))
        model = copy.deepcopy(template)
        res = train(model, self.fold.final, "noise", TrainConfig(epochs=max(epochs), seed=self.fold.seed), keep=tuple(epochs))
        self.ni_states, self.ni_seconds, self.ni_template = res.states, res.seconds_at, template
        scores = {e: self.val_accuracy(_with_state(template, res.states[e])) for e in self.s.ni_epochs}
        best = max(scores, key=lambda e: (scores[e], -e))
        self.ni = _with_state(template, res.states[best])
        programmed, report = _programmed(self.ni, self.test_ids, self.seed)
        self.models["noise_injection"] = programmed
        return self._outcome(programmed, report, train_seconds=res.seconds_at[best], choice={"epochs": best, "val": scores})

    def selective(self, cfg: CIMConfig, tsb_weights: int, budgets: tuple[int, ...]) -> dict[str, MethodOutcome]:
        """(c) Selective write-verify of the NI model at each budget (selection chosen on validation)."""
        start = time.perf_counter()
        scores = {
            "sensitivity": sensitivity_scores(self.ni, self.train_x, self.train_y, "hessian"),
            "magnitude": sensitivity_scores(self.ni, self.train_x, self.train_y, "magnitude"),
        }
        gen = torch.Generator().manual_seed(self.seed)
        scores["random"] = {n: torch.rand(s.shape, generator=gen) for n, s in scores["magnitude"].items()}
        rank_seconds = time.perf_counter() - start
        total = sum(s.numel() for s in scores["magnitude"].values())
        out = {}
        for mult in budgets:
            count = min(mult * tsb_weights, total)
            val = {sel: self.val_accuracy(self.ni, top_k_masks(scores[sel], count)) for sel in self.s.selections}
            best = max(val, key=lambda k: (val[k], k == "magnitude"))
            programmed, report = _programmed(self.ni, self.test_ids, self.seed, top_k_masks(scores[best], count))
            self.models[f"swv@{mult}x"] = programmed
            out[f"swv@{mult}x"] = self._outcome(
                programmed, report, train_seconds=self.ni_seconds_chosen + rank_seconds,
                choice={"selection": best, "val": val, "budget_weights": count, "multiple": mult},
            )
        programmed, report = _programmed(self.ni, self.test_ids, self.seed, top_k_masks(scores["magnitude"], total))
        self.models["swv@all"] = programmed
        out["swv@all"] = self._outcome(programmed, report, train_seconds=self.ni_seconds_chosen, choice={"budget_weights": total})
        return out

    # -- per-chip fitting flows -----------------------------------------------------------------
    def _fit(self, kind: str, backbone: nn.Module, chip_ids: list[int], cfg: CIMConfig, width: int, fit: ct.FitConfig):
        """Program ``backbone`` on ``chip_ids``, fit ``kind`` per chip; returns (model, fit, report, params, extra)."""
        model, report = _programmed(backbone, chip_ids, self.seed)
        chips = len(chip_ids)
        if kind in ("tsb", "tsb_bias_only"):
            block = ct.add_tsb(model, width, cfg, chips)
            params = ct.tsb_parameters(block, kind == "tsb_bias_only")
            extra = block
        elif kind == "tsb_shared":
            block = ct.add_tsb(model, width, cfg, 1)
            params, extra = ct.tsb_parameters(block, False), block
        elif kind == "bias":
            params, extra = ct.insert_chip_biases(model, chips), None
        elif kind == "last_layer":
            layer = ct.insert_chip_last_layer(model, chips)
            params, extra = [layer.weight], layer
        else:
            raise ValueError(kind)
        result = ct.fit_per_chip(model, params, self.train_x, self.train_y, chips, fit)
        return model, result, report, params, extra

    def _finish(self, kind: str, model: nn.Module, params, extra, snapshot, chip_ids: list[int]) -> tuple[float, float]:
        """Load a snapshot and write what the flow writes to the chips; returns (pulses, reads) per chip."""
        ct.restore(params, snapshot)
        if kind in ("tsb", "tsb_bias_only"):
            pt = extra.program(chip_ids, self.seed)
            return float(pt.pulses.mean()), float(pt.verify_reads.mean())
        if kind == "last_layer":
            return extra.program(chip_ids, self.seed)
        return 0.0, 0.0

    def fitted_val_scores(self, kind: str, backbone: nn.Module, cfg: CIMConfig, width: int) -> dict[int, float]:
        """Validation accuracy at every fitting checkpoint (fitted on the validation chips)."""
        fit_ids = self.cal_ids if kind == "tsb_shared" else self.val_ids
        model, result, _, params, extra = self._fit(kind, backbone, fit_ids, cfg, width, self.s.fit)
        scores = {}
        for step, snap in result.snapshots.items():
            if kind == "tsb_shared":
                deployed, _, _ = self._shared_on(model, extra, snap, self.val_ids)
                scores[step] = float(chip_correct(deployed, self.val_x, self.val_y, len(self.val_ids)).mean())
                continue
            trial = copy.deepcopy(model)
            t_params, t_extra = _twin(model, trial, params, extra)
            self._finish(kind, trial, t_params, t_extra, snap, fit_ids)
            scores[step] = float(chip_correct(trial, self.val_x, self.val_y, len(fit_ids)).mean())
        return scores

    def _shared_on(self, fitted: nn.Module, block, snap, chip_ids) -> tuple[nn.Module, object]:
        """The model fitted on the calibration chips, its backbone reprogrammed on ``chip_ids``
        and its one block (the ``snap`` state) programmed, the same, on every chip.

        Reprogramming keeps the block sites' DAC ranges learnt while fitting.
        """
        deployed = copy.deepcopy(fitted)
        shared = _twin(fitted, deployed, [], block)[1]
        report = program_model(deployed, chip_ids, self.seed)
        shared.start_calibration(1)
        ct.restore([shared.chip_weight, shared.chip_bias], snap)
        ct.program_shared_block(shared, chip_ids, self.seed)
        return deployed, shared, report

    def fitted_outcome(self, kind: str, backbone: nn.Module, cfg: CIMConfig, width: int, steps: int, train_seconds: float, name: str) -> MethodOutcome:
        """Fit ``kind`` on the test chips with ``steps`` steps and evaluate it on the test images."""
        fit = replace(self.s.fit, checkpoints=(steps,))
        devices = devices_per_chip(backbone)
        if kind == "tsb_shared":
            fitted, result, _, _, block = self._fit(kind, backbone, self.cal_ids, cfg, width, fit)
            deployed, shared, report = self._shared_on(fitted, block, result.snapshots[steps], self.test_ids)
            self.models[name] = deployed
            return _shared_outcome(self, deployed, report, shared, train_seconds + result.seconds, width, steps)
        model, result, report, params, extra = self._fit(kind, backbone, self.test_ids, cfg, width, fit)
        pulses, reads = self._finish(kind, model, params, extra, result.snapshots[steps], self.test_ids)
        self.models[name] = model
        written = width * width if kind in ("tsb", "tsb_bias_only") else 0
        out = self._outcome(model, report, train_seconds=train_seconds, per_chip_seconds=result.seconds / len(self.test_ids),
                            readback_reads_per_chip=float(devices), choice={"width": width, "steps": steps})
        out.verified_weights += written
        out.weights += written
        out.pulses_per_chip += pulses
        out.verify_reads_per_chip += reads
        return out

    # -- one sigma ------------------------------------------------------------------------------
    def run_sigma(self, sigma: float, extended: bool) -> dict[str, MethodOutcome]:
        """Every method at ``sigma`` on this fold."""
        cfg = self.s.config(sigma)
        self.models: dict[str, nn.Module] = {}
        out = {"plain": self.plain(cfg), "noise_injection": self.noise_injection(cfg)}
        self.ni_seconds_chosen = out["noise_injection"].train_seconds
        # TSB: backbone epochs x width x steps, all chosen on validation chips.
        grid = {}
        for epochs in self.s.tsb_backbone_epochs:
            backbone = _with_state(self.ni_template, self.ni_states[epochs])
            for width in self.s.tsb_widths:
                for steps, acc in self.fitted_val_scores("tsb", backbone, cfg, width).items():
                    grid[(epochs, width, steps)] = acc
        epochs, width, steps = max(grid, key=lambda k: (grid[k], -k[0], -k[1], -k[2]))
        backbone = _with_state(self.ni_template, self.ni_states[epochs])
        tsb_train = self.ni_seconds[epochs]
        out["tsb"] = self.fitted_outcome("tsb", backbone, cfg, width, steps, tsb_train, "tsb")
        out["tsb"].choice.update(epochs=epochs, val={f"{e}/{w}/{s}": a for (e, w, s), a in grid.items()})
        budgets = self.s.budgets if sigma in self.s.budget_sigmas or sigma == self.s.main_sigma else (1,)
        out.update(self.selective(cfg, width * width, budgets))
        if extended and sigma == self.s.main_sigma:
            for kind in ("tsb_bias_only", "tsb_shared", "bias", "last_layer"):
                val = self.fitted_val_scores(kind, backbone, cfg, width)
                best = max(val, key=lambda s: (val[s], -s))
                out[kind] = self.fitted_outcome(kind, backbone, cfg, width, best, tsb_train, kind)
                out[kind].choice["val"] = val
            for k in self.s.tsb_widths:
                out[f"tsb_k{k}"] = out["tsb"] if k == width else self.fitted_outcome("tsb", backbone, cfg, k, steps, tsb_train, f"tsb_k{k}")
            self.drift(out)
        self.log(f"  {self.network} fold {self.fold.index} sigma {sigma}: " + ", ".join(
            f"{k}={v.correct.mean():.3f}" for k, v in out.items()))
        return out

    def drift(self, out: dict[str, MethodOutcome]) -> None:
        """Accuracy of the deployed chips after conductance drift/relaxation (no recalibration)."""
        for name in ("plain", "noise_injection", "swv@1x", "swv@all", "tsb", "bias"):
            if name not in self.models:
                continue
            for t in self.s.drift_seconds:
                with drifted_model(self.models[name], t, self.seed):
                    out[name].drift[str(int(t))] = chip_correct(self.models[name], self.test_x, self.test_y, len(self.test_ids))


def _strip(model: nn.Module) -> nn.Module:
    """A copy of ``model`` without TSB sites, chip offsets or per-chip last layers (digital twin)."""
    from .tsb import TSBSite

    model = copy.deepcopy(model)

    def unwrap(module: nn.Module) -> None:
        for name, child in module.named_children():
            if isinstance(child, (TSBSite, ct.ChipBias, ct.ChipLastLayer)):
                setattr(module, name, child.layer)
            else:
                unwrap(child)

    unwrap(model)
    return model


def _twin(model: nn.Module, trial: nn.Module, params, extra):
    """The parameters and wrapper of ``trial`` (a deep copy of ``model``) matching ``params``/``extra``."""
    names = {id(p): n for n, p in model.named_parameters(remove_duplicate=False)}
    t_named = dict(trial.named_parameters(remove_duplicate=False))
    t_params = [t_named[names[id(p)]] for p in params]
    if extra is None:
        return t_params, None
    path = next(n for n, m in model.named_modules(remove_duplicate=False) if m is extra)
    return t_params, trial.get_submodule(path)


def _shared_outcome(runner: FoldRunner, deployed, report, shared, train_seconds: float, width: int, steps: int) -> MethodOutcome:
    pt = shared.programmed
    out = runner._outcome(deployed, report, train_seconds=train_seconds, choice={"width": width, "steps": steps})
    out.verified_weights += shared.crossbar_weights
    out.weights += shared.crossbar_weights
    out.pulses_per_chip += float(pt.pulses.mean())
    out.verify_reads_per_chip += float(pt.verify_reads.mean())
    return out
