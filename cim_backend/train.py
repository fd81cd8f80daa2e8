"""Training loops: plain (digital) training and noise-injection training.

Noise-injection training (``Mode.NOISE``) draws a fresh realisation of the programming
variation and read noise at every forward pass, so the network learns weights whose loss is
flat under the chip's perturbations (Yan et al., ICCAD 2021; the first stage of TSB).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from .data import Split
from .layers import Mode
from .network import set_mode


@dataclass(frozen=True)
class TrainConfig:
    """Optimiser settings (Adam, constant learning rate, shuffled mini-batches)."""

    epochs: int = 60
    lr: float = 2e-3
    batch_size: int = 64
    seed: int = 0


@dataclass
class TrainResult:
    """Wall time, CPU time (all threads; robust to a shared machine) and per-epoch loss."""

    seconds: float
    losses: list[float] = field(default_factory=list)
    cpu_seconds: float = 0.0
    states: dict[int, dict[str, torch.Tensor]] = field(default_factory=dict)
    seconds_at: dict[int, float] = field(default_factory=dict)


def train(model: nn.Module, split: Split, mode: Mode | str, cfg: TrainConfig, keep: tuple[int, ...] = ()) -> TrainResult:
    """Train ``model`` on ``split`` with every CIM layer in ``mode`` (digital or noise).

    ``keep`` lists epochs after which a copy of the parameters (and the wall seconds so far)
    is kept in the result: checkpoints of one run, for choosing the epochs on validation data.
    The model is left in eval mode with the CIM layers back in digital mode.
    """
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    set_mode(model, mode)
    model.train()
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=cfg.lr)
    n = split.x_train.shape[0]
    losses: list[float] = []
    states: dict[int, dict[str, torch.Tensor]] = {}
    seconds_at: dict[int, float] = {}
    start, cpu_start = time.perf_counter(), time.process_time()
    for _ in range(cfg.epochs):
        order = torch.randperm(n, generator=gen)
        total = 0.0
        for i in range(0, n, cfg.batch_size):
            idx = order[i : i + cfg.batch_size]
            loss = F.cross_entropy(model(split.x_train[idx]), split.y_train[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += float(loss.detach()) * idx.numel()
        losses.append(total / n)
        if len(losses) in keep:
            states[len(losses)] = {k: v.detach().clone() for k, v in model.state_dict().items()}
            seconds_at[len(losses)] = time.perf_counter() - start
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    model.eval()
    set_mode(model, Mode.DIGITAL)
    return TrainResult(seconds, losses, cpu, states, seconds_at)
