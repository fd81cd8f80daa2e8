"""Per-chip tuning by distillation: a few parameters of one chip's network learn to make its
next-token distributions match a teacher's (the digital model), under a time budget.

Used to calibrate a language model's Tiny Shared Block (only the block's ``A`` and ``b``) and,
with the very same loop and number of steps, the digital-only baseline (only norm gains and
biases). The chip is known only through one read-back of its devices while tuning (as in
:mod:`cim_backend.calibration`), with fresh read noise at every forward. The parameters kept
are those with the lowest KL on validation batches, measured every ``eval_every`` steps with the
same noise draws each time (a fixed seed), so a lucky draw cannot pick a worse state. Ctrl-C
stops the loop and keeps the best state so far.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

Batch = tuple[torch.Tensor, torch.Tensor]  # (token ids (B, T), teacher log-probs (B, T, V) or vectors)
Loss = Optional[Callable[[torch.Tensor, torch.Tensor], torch.Tensor]]  # (student output, teacher target) -> loss


@dataclass(frozen=True)
class DistillConfig:
    """Adam on the given parameters until ``budget_s`` seconds or ``max_steps`` steps."""

    lr: float = 0.003
    budget_s: float = 300.0
    max_steps: Optional[int] = None
    eval_every: int = 5
    seed: int = 0


@dataclass
class DistillResult:
    """What the loop did: steps run, the best validation KL (nats per token) and when."""

    steps: int
    seconds: float
    initial_val_kl: float
    best_val_kl: float
    best_step: int
    interrupted: bool = False
    history: list[tuple[int, float]] = field(default_factory=list)  # (step, validation KL)


def kl_to_teacher(logits: torch.Tensor, teacher_log_probs: torch.Tensor) -> torch.Tensor:
    """Mean over tokens of KL(teacher || student), in nats."""
    student = logits.float().log_softmax(-1)
    return F.kl_div(student, teacher_log_probs, log_target=True, reduction="none").sum(-1).mean()


def cosine_distance(embeddings: torch.Tensor, teacher_embeddings: torch.Tensor) -> torch.Tensor:
    """Mean of ``1 - cos`` between the student's and the teacher's vectors (an encoder's loss)."""
    return (1 - F.cosine_similarity(embeddings.float(), teacher_embeddings, dim=-1)).mean()


def log_probs(logits: torch.Tensor) -> torch.Tensor:
    """What a language model's teacher batch keeps: its log-probabilities."""
    return logits.float().log_softmax(-1)


def teacher_batches(teacher: Callable[[torch.Tensor], torch.Tensor], windows: torch.Tensor,
                    batch_size: int, target: Callable[[torch.Tensor], torch.Tensor] = log_probs) -> list[Batch]:
    """``windows`` (N, T) cut into batches, each with ``target`` of the teacher's output
    (log-probs by default; an encoder keeps its vectors as they are)."""
    batches = []
    with torch.no_grad():
        for start in range(0, windows.shape[0], batch_size):
            x = windows[start:start + batch_size]
            batches.append((x, target(teacher(x))))
    return batches


def mean_kl(student: Callable[[torch.Tensor], torch.Tensor], batches: Sequence[Batch], seed: int,
            loss: Loss = None) -> float:
    """The loss (KL by default) over ``batches`` with the read noise drawn from ``seed`` (RNG
    state restored after)."""
    loss = loss or kl_to_teacher
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        torch.manual_seed(seed)
        total = sum(float(loss(student(x), t)) * x.numel() for x, t in batches)
    return total / max(sum(x.numel() for x, _ in batches), 1)


def distill(student: Callable[[torch.Tensor], torch.Tensor], params: Sequence[nn.Parameter],
            train: Sequence[Batch], val: Sequence[Batch], cfg: DistillConfig,
            progress: Optional[Callable[[int, float], None]] = None, loss: Loss = None) -> DistillResult:
    """Tune ``params`` (only these: the caller froze everything else) so ``student(x)``'s
    logits match the teacher's on ``train``; keep the state best on ``val``. ``loss``:
    :func:`kl_to_teacher` by default (``best_val_kl`` then holds that loss, whatever it is).

    ``progress(step, best_val_kl)`` is called after every validation.
    """
    loss = loss or kl_to_teacher
    if not train or not val:
        raise ValueError("distillation needs at least one training and one validation batch")
    params = list(params)
    opt = torch.optim.Adam(params, lr=cfg.lr)
    best = [p.detach().clone() for p in params]
    initial = mean_kl(student, val, cfg.seed, loss)
    result = DistillResult(0, 0.0, initial, initial, 0, history=[(0, initial)])
    start = time.perf_counter()
    torch.manual_seed(cfg.seed)
    try:
        for step, (x, teacher) in enumerate(itertools.cycle(train), start=1):
            value = loss(student(x), teacher)
            opt.zero_grad(set_to_none=True)
            value.backward()
            opt.step()
            result.steps = step
            done = (cfg.max_steps is not None and step >= cfg.max_steps
                    or time.perf_counter() - start >= cfg.budget_s)
            if step % cfg.eval_every == 0 or done:
                val_kl = mean_kl(student, val, cfg.seed, loss)
                result.history.append((step, val_kl))
                if val_kl < result.best_val_kl:
                    result.best_val_kl, result.best_step = val_kl, step
                    best = [p.detach().clone() for p in params]
                if progress is not None:
                    progress(step, result.best_val_kl)
            if done:
                break
    except KeyboardInterrupt:
        result.interrupted = True
    with torch.no_grad():
        for p, b in zip(params, best):
            p.copy_(b)
    result.seconds = time.perf_counter() - start
    return result
