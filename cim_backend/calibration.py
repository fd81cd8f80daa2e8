"""The TSB deployment flow on programmed chips: read back, calibrate the block, program it.

1. The backbone (trained with noise injection to an early convergence) is programmed onto
   the chips (:func:`cim_backend.network.program_model`).
2. Every device is read back once; the read is noisy, so the flow knows each chip only up to
   one read's noise.
3. The TSB is inserted and trained per chip against the read-back model, with fresh read
   noise at every step; the backbone is frozen (its parameters get no gradient at all).
4. Only the block's ``k*k`` weights are programmed with write-verify.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .errors import CIMStateError
from .network import cim_layers, repeat_for_chips
from .programming import read_back_conductances
from .tsb import TinySharedBlock


@dataclass(frozen=True)
class CalibrationConfig:
    """Adam steps on mini-batches of the training split, all chips at once."""

    steps: int = 150
    lr: float = 0.02
    batch_size: int = 128
    seed: int = 0


@dataclass
class CalibrationResult:
    """Wall and CPU time of the calibration (block programming included), final loss."""

    seconds: float
    chips: int
    final_loss: float
    cpu_seconds: float = 0.0


def _install_readbacks(model: nn.Module, seed: int) -> None:
    """Give every CIM layer one seeded read of its chips' devices (both paths then use it)."""
    for key, (_, layer) in enumerate(cim_layers(model)):
        if layer.programmed is None:
            raise CIMStateError("program the backbone before calibrating the TSB")
        layer.set_readback(read_back_conductances(layer.programmed, seed * 1009 + key))


def _clear_readbacks(model: nn.Module) -> None:
    """Back to the true chips."""
    for _, layer in cim_layers(model):
        layer.set_readback(None)


def calibrate_tsb(
    model: nn.Module,
    block: TinySharedBlock,
    x: torch.Tensor,
    y: torch.Tensor,
    chip_ids: list[int],
    cfg: CalibrationConfig,
) -> CalibrationResult:
    """Train one block per chip against the chips' read-back, then program the blocks.

    The summed loss over chips makes each chip's gradient independent of the others, so a
    batch of chips calibrates exactly like chips calibrated one at a time (up to the random
    mini-batches, which are shared).
    """
    chips = len(chip_ids)
    for p in model.parameters():
        p.requires_grad_(False)
    block.start_calibration(chips)
    _install_readbacks(model, cfg.seed)
    opt = torch.optim.Adam([block.chip_weight, block.chip_bias], lr=cfg.lr)
    gen = torch.Generator().manual_seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    model.eval()
    loss_value = float("nan")
    start, cpu_start = time.perf_counter(), time.process_time()
    try:
        for _ in range(cfg.steps):
            idx = torch.randint(0, x.shape[0], (cfg.batch_size,), generator=gen)
            logits = model(repeat_for_chips(x[idx], chips))
            loss = F.cross_entropy(logits, y[idx].repeat(chips)) * chips
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            loss_value = float(loss.detach()) / chips
        block.program(list(chip_ids), cfg.seed)
    finally:
        _clear_readbacks(model)
    return CalibrationResult(time.perf_counter() - start, chips, loss_value, time.process_time() - cpu_start)
