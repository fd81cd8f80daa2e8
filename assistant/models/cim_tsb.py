"""The Tiny Shared Block on a language model's chip: calibrate it, store it, install it.

Transformer form: after every chip projection (q, k, v, o, gate, up, down), the output of
every token is cut into groups of ``width`` channels and one shared block adds ``A DAC(y) + b``
to each group (``cim_backend.tsb``'s grouping rule: with the default width of 96, 576 = 6 groups,
192 = 2, 1536 = 16; a width that does not divide is zero-padded). ``A`` (``width**2`` weights) is programmed onto
the crossbar with write-verify; ``b`` and each site's DAC range are digital. Nothing else of
the chip changes. Calibration distils the digital model's next-token distributions into the
chip's by training ``A`` and ``b`` only, against one read-back of the chip.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional, Sequence

from assistant.errors import InvalidRequestError

# The block's width and Adam's learning rate for calibration, chosen on validation text on
# chips the evaluation never programs (benchmarks/cim/select_tsb.py, lm-full/tsb-selection.json).
DEFAULT_WIDTH = 96
DEFAULT_LR = 0.003


@dataclass(frozen=True)
class CalibrationText:
    """Token windows to tune on and to pick the best state on (never the evaluation text)."""

    train: "object"  # torch.Tensor (N, T)
    val: "object"  # torch.Tensor (M, T)
    source: str


def start_tsb(engine, width: int = DEFAULT_WIDTH):
    """Wrap every chip projection of ``engine`` with one shared block (the identity until it is
    trained), freeze everything else and return the block."""
    import torch

    from cim_backend.tsb import insert_tsb

    for p in engine.net.parameters():
        p.requires_grad_(False)
    if engine.block is None or engine.block.width != width:
        if engine.block is not None:
            raise InvalidRequestError(f"this chip's TSB is {engine.block.width} wide, not {width}", param="width")
        engine.block = insert_tsb(engine.net, width, engine.config, exact_residual=True)
    with torch.no_grad():  # a block calibrated again starts from the identity again
        engine.block.weight.zero_()
        engine.block.bias.zero_()
        for site in _sites(engine).values():
            site.input_range.zero_()
    engine.block.start_calibration(1)
    return engine.block


def _sites(engine) -> dict:
    from cim_backend.tsb import TSBSite

    return {name: module for name, module in engine.net.named_modules() if isinstance(module, TSBSite)}


def calibrate_tsb(engine, text: CalibrationText, cfg, width: int = DEFAULT_WIDTH, batch_size: int = 2,
                  progress: Optional[Callable[[int, float], None]] = None):
    """Insert the block, distil the digital model into the chip + block (``cfg``: a
    ``cim_backend.distill.DistillConfig``), program the best block with write-verify.
    Returns the :class:`~cim_backend.distill.DistillResult`."""
    def block_parameters() -> list:
        block = start_tsb(engine, width)
        return [block.chip_weight, block.chip_bias]

    def program_block() -> None:
        engine.block.program([engine.seed], seed=engine.seed)

    return tune_on_chip(engine, text, cfg, block_parameters, batch_size, progress, finish=program_block)


def tune_on_chip(engine, text: CalibrationText, cfg, make_params: Callable[[], Sequence], batch_size: int = 2,
                 progress: Optional[Callable[[int, float], None]] = None, finish: Optional[Callable[[], None]] = None):
    """The distillation shared by the TSB and the digital-only baseline: teacher log-probs from
    the digital model, then ``make_params()`` (called once, with the chip in place) tuned
    against one read-back of the chip; ``finish`` runs after (e.g. programming the block)."""
    from cim_backend.calibration import _clear_readbacks, _install_readbacks
    from cim_backend.distill import distill, teacher_batches

    student = lambda x: engine.net(x).logits  # noqa: E731
    with engine.variant("digital"):
        train = teacher_batches(student, text.train, batch_size)
        val = teacher_batches(student, text.val, batch_size)
    params = list(make_params())
    _install_readbacks(engine.net, cfg.seed)
    try:
        result = distill(student, params, train, val, cfg, progress)
    finally:
        _clear_readbacks(engine.net)
    if finish is not None:
        finish()
    return result


def tsb_state(engine) -> dict:
    """The calibrated block as stored in a chip record (plain lists and floats)."""
    block = engine.block
    return {"width": block.width, "weight": block.chip_weight.detach()[0].tolist(),
            "bias": block.chip_bias.detach()[0].tolist(),
            "site_ranges": {name: float(site.input_range) for name, site in _sites(engine).items()}}


def install_tsb(engine, state: dict) -> None:
    """Put a stored block back onto ``engine``'s chip, programmed as it was (same seed)."""
    import torch

    block = start_tsb(engine, int(state["width"]))
    sites = _sites(engine)
    if set(sites) != set(state["site_ranges"]):
        raise InvalidRequestError("the stored TSB does not match this model's layers: calibrate again", param="chip")
    with torch.no_grad():
        block.chip_weight.copy_(torch.tensor(state["weight"]).unsqueeze(0))
        block.chip_bias.copy_(torch.tensor(state["bias"]).unsqueeze(0))
        for name, site in sites.items():
            site.input_range.fill_(state["site_ranges"][name])
    block.program([engine.seed], seed=engine.seed)
