"""``assistant cim eval``: what a simulated chip does to the served model, with and without TSB.

For every variation level and chip seed: program the chip, measure held-out cross-entropy
(the shipped text's evaluation part, which nothing calibrates or tunes on) for the chip
without TSB and with selective write-verify of 1, 10 and 100 times the TSB's weights (verified
on that chip, then undone), calibrate the TSB (distillation on the calibration part, best state
chosen on the validation part) and measure again; then, on the same chip with its TSB off, the
digital-only baseline: only the RMSNorm gains tuned with the same distillation for the same
number of steps. Recovery = (CE_cim - CE_tsb) / (CE_cim - CE_digital), per chip, with its mean and a
bootstrap 95% interval over chips, at the levels where the chip costs at least 0.1 nats on
validation text. Chips run one at a time (a chip holds ~425M conductances).
"""
from __future__ import annotations

import copy
import math
import time
from dataclasses import asdict, dataclass, field
from typing import Callable, Optional

from assistant.learn.cim_corpus import calibration_text, corpus_for, token_windows
from assistant.models.cim_chip import ChipSpec
from assistant.models.cim_tsb import DEFAULT_LR, DEFAULT_WIDTH, calibrate_tsb, tune_on_chip

MIN_GAP_NATS = 0.1  # levels where the chip costs less than this on validation text are not scored


@dataclass(frozen=True)
class EvalPlan:
    """How much to measure; ``quick()`` finishes in minutes, the default is the full run."""

    sigmas: tuple[float, ...] = (0.05, 0.1)
    chips: int = 5
    budget_s: float = 180.0
    eval_windows: int = 8
    window: int = 64
    train_windows: int = 24
    val_windows: int = 4
    width: int = DEFAULT_WIDTH
    lr: float = DEFAULT_LR
    adc_bits: Optional[int] = 6
    weight_bits: int = 4
    device: str = "rram"
    max_steps: Optional[int] = None
    encoder_budget_s: float = 30.0  # the encoder's TSB calibration per chip (see cim_encoder)
    swv_multiples: tuple[int, ...] = (1, 10, 100)  # selective write-verify at these multiples of TSB's weights

    @classmethod
    def quick(cls) -> "EvalPlan":
        """One chip per level, 30-second calibrations, fewer windows (a smoke run, no CI)."""
        return cls(chips=1, budget_s=30.0, eval_windows=2, train_windows=12, val_windows=2, encoder_budget_s=10.0,
                   swv_multiples=(10,))

    def chip_config(self, sigma: float, seed: int, model: str = "", digest: str = ""):
        """The ``CIMConfig`` of chip ``seed`` at variation ``sigma``."""
        return ChipSpec(model=model, model_sha256=digest, device=self.device, weight_bits=self.weight_bits,
                        adc_bits=self.adc_bits, sigma_rel=sigma, seed=seed).cim_config()


@dataclass
class ChipResult:
    """One chip's cross-entropies (nats per token) and its calibration."""

    sigma: float
    seed: int
    ce_cim: float
    ce_cim_tsb: float
    ce_norm_only: float
    val_ce_cim: float
    calibration_steps: int
    calibration_s: float
    verified_fraction: float
    ce_swv: dict[int, float] = field(default_factory=dict)  # multiple of TSB's weights -> CE, no TSB


@dataclass
class EvalReport:
    """Everything measured, and the summary keys the issue asks for."""

    plan: dict
    ce_digital: float
    val_ce_digital: float
    chips_run: list[ChipResult] = field(default_factory=list)
    seconds: float = 0.0


def cross_entropy(engine, windows, variant: str, seed: int = 0) -> float:
    """Mean next-token cross-entropy over ``windows`` (one batch) as ``variant`` runs them
    (read noise seeded)."""
    import torch

    with engine.variant(variant), torch.random.fork_rng(devices=[]), torch.no_grad():
        torch.manual_seed(seed)
        return float(_lm_loss(engine.net, windows))


def _norm_gains(engine) -> list:
    """The RMSNorm gains of every layer (digital parameters), made trainable, nothing else."""
    for p in engine.net.parameters():
        p.requires_grad_(False)
    gains = [m.weight for name, m in engine.net.named_modules() if name.endswith("norm") and hasattr(m, "weight")]
    for p in gains:
        p.requires_grad_(True)
    return gains


def _lm_loss(model, x):
    """Next-token cross-entropy of one batch (a forward with gradients)."""
    import torch.nn.functional as F

    logits = model(x).logits[:, :-1]
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), x[:, 1:].reshape(-1))


def swv_scores(model, windows) -> dict:
    """Which weights selective write-verify verifies first: squared gradients of the digital
    model's loss on calibration windows, times the row scale squared
    (:func:`cim_backend.selective.squared_gradient_scores`)."""
    from cim_backend.selective import squared_gradient_scores

    from assistant.models.cim_engine import is_projection

    layers = {name: module for name, module in model.named_modules() if is_projection(name)}
    scores = squared_gradient_scores(layers, [lambda x=row.unsqueeze(0): _lm_loss(model, x) for row in windows])
    model.zero_grad(set_to_none=True)  # every parameter got a gradient; copies must not carry them
    return scores


def selective_write_verify(engine, evaluation, plan: EvalPlan, scores: dict, say) -> dict[int, float]:
    """Held-out CE of the chip (no TSB) with each multiple of TSB's weights write-verified as
    well, the most important first (each undone before the next)."""
    from cim_backend.selective import top_k_masks

    ce_swv = {}
    for multiple in plan.swv_multiples:
        say(f"selective write-verify of {multiple}x the TSB's weights")
        with engine.write_verified(top_k_masks(scores, multiple * plan.width ** 2)):
            ce_swv[multiple] = cross_entropy(engine, evaluation, "cim")
    return ce_swv


def _norm_gains_only(engine, text, evaluation, plan: EvalPlan, steps: int, seed: int, say) -> float:
    """Held-out CE of the chip with its TSB off and only the norm gains tuned, with TSB's
    distillation (same text, read-back and learning rate) for its number of ``steps``."""
    from cim_backend.distill import DistillConfig

    say(f"the norm-gains-only baseline ({steps} steps)")
    with engine.variant("cim"):
        tune_on_chip(engine, text, DistillConfig(lr=plan.lr, budget_s=math.inf, max_steps=max(steps, 1), seed=seed),
                     lambda: _norm_gains(engine))
    return cross_entropy(engine, evaluation, "cim")


def _one_chip(report: Optional[EvalReport], plan: EvalPlan, sigma: float, seed: int, resolved, digest: str, loaded,
              n_threads: int, text, evaluation, scores: dict, say) -> EvalReport:
    """Program chip ``seed`` at ``sigma`` and measure it: without TSB, with selective
    write-verify (undone after each), with its calibrated TSB, then with the TSB off and only
    the norm gains tuned. Adds a :class:`ChipResult` to ``report``
    (made on the first chip, with the digital figures)."""
    from cim_backend.distill import DistillConfig

    from assistant.models.cim_engine import CIMEngine

    model, tokenizer = loaded
    engine = CIMEngine(resolved, plan.chip_config(sigma, seed, resolved.name, digest), None, n_threads,
                       seed=seed, loaded=(copy.deepcopy(model), tokenizer))
    if report is None:
        report = EvalReport(asdict(plan), cross_entropy(engine, evaluation, "digital"),
                            cross_entropy(engine, text.val, "digital"))
    say("measuring without TSB")
    ce_cim, val_cim = cross_entropy(engine, evaluation, "cim"), cross_entropy(engine, text.val, "cim")
    ce_swv = selective_write_verify(engine, evaluation, plan, scores, say)
    say(f"calibrating the TSB ({plan.budget_s:.0f} s budget)")
    result = calibrate_tsb(engine, text, DistillConfig(lr=plan.lr, budget_s=plan.budget_s, max_steps=plan.max_steps,
                                                       seed=seed), plan.width)
    ce_tsb = cross_entropy(engine, evaluation, "cim+tsb")
    verified = (engine.program.verified_weights + plan.width ** 2) / (engine.program.weights + plan.width ** 2)
    ce_norm = _norm_gains_only(engine, text, evaluation, plan, result.steps, seed, say)
    report.chips_run.append(ChipResult(sigma, seed, ce_cim, ce_tsb, ce_norm, val_cim, result.steps, result.seconds,
                                       verified, ce_swv))
    say(f"CE digital {report.ce_digital:.3f}, chip {ce_cim:.3f}, chip+TSB {ce_tsb:.3f}, norm gains {ce_norm:.3f}")
    return report


def run_eval(settings, model_name: str, plan: EvalPlan, n_threads: int, loaded=None,
             progress: Optional[Callable[[str], None]] = None) -> EvalReport:
    """Measure ``plan`` on the served model; ``loaded`` = ``(torch model, tokenizer)`` to reuse."""
    import torch

    from assistant.models.catalog import resolve_model, sha256_file
    from assistant.models.hf_model import load_hf_model

    say = progress or (lambda _: None)
    start = time.perf_counter()
    resolved = resolve_model(model_name, settings)
    digest = sha256_file(resolved.path)
    model, tokenizer = loaded or load_hf_model(resolved.path, n_threads, settings.layout.tokenizers)
    text = calibration_text(tokenizer, settings, plan.window, plan.train_windows, plan.val_windows)
    evaluation = torch.tensor(token_windows(tokenizer, corpus_for(settings).evaluation, plan.window,
                                            plan.eval_windows))
    report: Optional[EvalReport] = None
    scores = swv_scores(model, text.train[:4]) if plan.swv_multiples else {}
    for sigma in plan.sigmas:
        for seed in range(plan.chips):
            report = _one_chip(report, plan, sigma, seed, resolved, digest, (model, tokenizer), n_threads, text,
                               evaluation, scores, lambda line, sg=sigma, sd=seed: say(f"sigma {sg:g} chip {sd}: {line}"))
    report.seconds = time.perf_counter() - start
    return report


def mean_ci(values: list[float], seed: int = 0) -> tuple[float, Optional[list[float]]]:
    """Mean and bootstrap 95% interval over chips (None with fewer than two chips)."""
    import numpy as np

    data = np.asarray(values, dtype=float)
    if len(data) < 2:
        return float(data.mean()), None
    rng = np.random.default_rng(seed)
    means = data[rng.integers(0, len(data), size=(2000, len(data)))].mean(axis=1)
    return float(data.mean()), [float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))]


def summarize(report: Optional[EvalReport], encoder: Optional[dict] = None) -> dict:
    """The JSON ``cim eval --out`` writes: per level, perplexities and recovery with its CI,
    and the encoder's retrieval (``encoder``, from :func:`assistant.learn.cim_encoder.encoder_eval`);
    a part not measured is null."""
    summary = _summarize_lm(report) if report is not None else {
        key: None for key in ("ppl_digital", "ppl_cim", "ppl_cim_tsb", "recovery", "recovery_ci95",
                              "verified_fraction", "chips", "sigma", "levels")}
    summary.update({"mrr_digital": None, "mrr_cim": None, "mrr_cim_tsb": None, "encoder": encoder})
    if encoder is not None:
        summary.update({"mrr_digital": encoder["digital"]["mrr"],
                        "mrr_cim": [lv["mrr_cim"] for lv in encoder["levels"]],
                        "mrr_cim_tsb": [lv["mrr_cim_tsb"] for lv in encoder["levels"]]})
        if summary["sigma"] is None:
            summary["sigma"] = [lv["sigma"] for lv in encoder["levels"]]
            summary["chips"] = [len(lv["chips"]) for lv in encoder["levels"]]
    return summary


def _summarize_lm(report: EvalReport) -> dict:
    levels = []
    for sigma in report.plan["sigmas"]:
        chips = [c for c in report.chips_run if c.sigma == sigma]
        if not chips:
            continue
        gap_val = sum(c.val_ce_cim for c in chips) / len(chips) - report.val_ce_digital
        scored = gap_val >= MIN_GAP_NATS
        recovery = [(c.ce_cim - c.ce_cim_tsb) / (c.ce_cim - report.ce_digital) for c in chips
                    if c.ce_cim - report.ce_digital > 0]
        norm_recovery = [(c.ce_cim - c.ce_norm_only) / (c.ce_cim - report.ce_digital) for c in chips
                         if c.ce_cim - report.ce_digital > 0]
        mean, ci = mean_ci(recovery) if recovery else (None, None)
        norm_mean, norm_ci = mean_ci(norm_recovery) if norm_recovery else (None, None)
        mean_ce = lambda key: sum(getattr(c, key) for c in chips) / len(chips)  # noqa: E731
        swv = {}
        for multiple in report.plan["swv_multiples"]:
            values = [c.ce_swv[multiple] for c in chips if multiple in c.ce_swv]
            rec = [(c.ce_cim - c.ce_swv[multiple]) / (c.ce_cim - report.ce_digital) for c in chips
                   if multiple in c.ce_swv and c.ce_cim - report.ce_digital > 0]
            swv[str(multiple)] = {"ppl": math.exp(sum(values) / len(values)) if values else None,
                                  "recovery": mean_ci(rec)[0] if rec and scored else None,
                                  "recovery_ci95": mean_ci(rec)[1] if rec and scored else None,
                                  "verified_weights": multiple * report.plan["width"] ** 2}
        levels.append({
            "sigma": sigma, "chips": len(chips), "scored": scored, "validation_gap_nats": gap_val,
            "ppl_cim": math.exp(mean_ce("ce_cim")), "ppl_cim_tsb": math.exp(mean_ce("ce_cim_tsb")),
            "ppl_norm_only": math.exp(mean_ce("ce_norm_only")),
            "recovery": mean if scored else None, "recovery_ci95": ci if scored else None,
            "recovery_norm_only": norm_mean if scored else None, "recovery_norm_only_ci95": norm_ci if scored else None,
            "verified_fraction": chips[0].verified_fraction, "selective_write_verify": swv,
            "calibration_steps_median": sorted(c.calibration_steps for c in chips)[len(chips) // 2],
        })
    return {
        "ppl_digital": math.exp(report.ce_digital),
        "ppl_cim": [lv["ppl_cim"] for lv in levels], "ppl_cim_tsb": [lv["ppl_cim_tsb"] for lv in levels],
        "recovery": [lv["recovery"] for lv in levels], "recovery_ci95": [lv["recovery_ci95"] for lv in levels],
        "verified_fraction": levels[0]["verified_fraction"] if levels else None,
        "chips": [lv["chips"] for lv in levels], "sigma": [lv["sigma"] for lv in levels],
        "levels": levels, "plan": report.plan, "ce_digital": report.ce_digital,
        "per_chip": [asdict(c) for c in report.chips_run], "seconds": report.seconds,
    }


def plot(summary: dict, path) -> None:
    """Perplexity against variation for digital, chip and chip + TSB (a PNG at ``path``;
    nothing when the language model was not measured)."""
    if summary["ppl_digital"] is None:
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    sigmas = summary["sigma"]
    ax.plot(sigmas, [summary["ppl_digital"]] * len(sigmas), "k--", label="digital")
    ax.plot(sigmas, summary["ppl_cim"], "o-", label="chip")
    ax.plot(sigmas, summary["ppl_cim_tsb"], "s-", label="chip + TSB")
    ax.plot(sigmas, [lv["ppl_norm_only"] for lv in summary["levels"]], "^:", label="chip + norm gains only")
    for multiple in summary["plan"]["swv_multiples"]:
        ax.plot(sigmas, [lv["selective_write_verify"][str(multiple)]["ppl"] for lv in summary["levels"]], "x:",
                label=f"selective write-verify, {multiple}x TSB's weights")
    ax.set_xlabel("programming variation (relative sigma)")
    ax.set_ylabel("held-out perplexity")
    ax.set_yscale("log")
    ax.legend()
    ax.set_title(f"{summary['plan']['weight_bits']}-bit weights, "
                 f"{summary['plan']['adc_bits'] or 'ideal'}-bit ADC, chips per level: {max(summary['chips'])}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
