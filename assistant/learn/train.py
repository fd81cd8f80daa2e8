"""LoRA training under a wall-clock budget, with periodic validation, early stopping, and
the best checkpoint (by validation loss) kept, not the last."""
from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

from assistant.learn.data import Dataset, Example

IGNORE = -100  # label id torch's cross-entropy skips: prompt tokens are context, not targets


@dataclass
class TrainConfig:
    """What one run may do. Rank/alpha/targets come from the device profile."""

    rank: int = 8
    alpha: int = 16
    target_modules: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj")
    budget_s: float = 60.0
    learning_rate: float = 3e-4
    batch_size: int = 4
    max_tokens: int = 128  # per example: short sequences keep a step affordable on 2 cores
    evaluations: int = 8  # spread over the budget
    patience: int = 3  # evaluations without improvement before stopping
    max_validation_examples: int = 16
    dropout: float = 0.05
    seed: int = 0


@dataclass
class TrainResult:
    """What happened, and the best LoRA weights seen."""

    initial_val_loss: float
    best_val_loss: float
    best_step: int
    steps: int
    train_seconds: float
    trained_tokens: int
    stopped: str  # budget | early_stop | interrupted | epochs
    history: list[dict] = field(default_factory=list)  # {seconds, step, train_loss, val_loss}
    best_state: dict = field(default_factory=dict, repr=False)  # peft lora tensor name -> tensor

    @property
    def tokens_per_s(self) -> float:
        return self.trained_tokens / self.train_seconds if self.train_seconds > 0 else 0.0


def encode(tokenizer, examples: list[Example], max_tokens: int) -> list[tuple[list[int], list[int]]]:
    """(input ids, labels) per example; the prompt part is masked out of the loss."""
    encoded = []
    eos = tokenizer.eos_token_id
    for example in examples:
        prompt_ids = tokenizer(example.prompt, add_special_tokens=False).input_ids
        target_ids = tokenizer(example.target, add_special_tokens=False).input_ids + [eos]
        ids = (prompt_ids + target_ids)[:max_tokens]
        labels = ([IGNORE] * len(prompt_ids) + target_ids)[:max_tokens]
        if any(label != IGNORE for label in labels):
            encoded.append((ids, labels))
    return encoded


def _batch(items, pad_id: int):
    import torch

    width = max(len(ids) for ids, _ in items)
    input_ids = torch.full((len(items), width), pad_id, dtype=torch.long)
    labels = torch.full((len(items), width), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(items), width), dtype=torch.long)
    for row, (ids, labs) in enumerate(items):
        input_ids[row, : len(ids)] = torch.tensor(ids)
        labels[row, : len(labs)] = torch.tensor(labs)
        mask[row, : len(ids)] = 1
    return input_ids, labels, mask


def evaluate(model, items, batch_size: int, pad_id: int) -> float:
    """Mean per-token loss over ``items``."""
    import torch

    total, count = 0.0, 0
    model.eval()
    with torch.no_grad():
        for start in range(0, len(items), batch_size):
            input_ids, labels, mask = _batch(items[start:start + batch_size], pad_id)
            logits = model(input_ids=input_ids, attention_mask=mask).logits[:, :-1]
            targets = labels[:, 1:]
            loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1),
                                                     ignore_index=IGNORE, reduction="sum")
            total += float(loss)
            count += int((targets != IGNORE).sum())
    return total / max(count, 1)


def add_lora(model, config: TrainConfig):
    """Wrap the model with peft LoRA on the configured modules."""
    from peft import LoraConfig, get_peft_model

    lora = LoraConfig(r=config.rank, lora_alpha=config.alpha, lora_dropout=config.dropout,
                      target_modules=list(config.target_modules), bias="none", task_type="CAUSAL_LM")
    return get_peft_model(model, lora)


def lora_state(model) -> dict:
    """A detached copy of the LoRA tensors only."""
    return {name: param.detach().clone() for name, param in model.named_parameters() if "lora_" in name}


class _TrainingRun:
    """One run's state: the clock, the step and evaluation costs, the best checkpoint so far."""

    def __init__(self, model, tokenizer, dataset: Dataset, config: TrainConfig,
                 on_progress: Optional[Callable[[dict], None]]):
        import torch

        torch.manual_seed(config.seed)
        self.model, self.config, self.on_progress = model, config, on_progress
        self.pad_id = tokenizer.pad_token_id
        self.train_items = encode(tokenizer, dataset.train, config.max_tokens)
        self.rng = random.Random(config.seed)
        val_items = encode(tokenizer, dataset.validation, config.max_tokens)
        self.val_items = self.rng.sample(val_items, min(len(val_items), config.max_validation_examples))
        self.optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad],
                                           lr=config.learning_rate)
        self.start = time.perf_counter()
        self.initial = evaluate(model, self.val_items, config.batch_size, self.pad_id)
        self.eval_cost = time.perf_counter() - self.start
        self.best, self.best_step, self.best_state = self.initial, 0, lora_state(model)
        self.history = [{"seconds": self.eval_cost, "step": 0, "train_loss": None, "val_loss": self.initial}]
        self.interval = config.budget_s / max(config.evaluations, 1)
        self.next_eval = time.perf_counter() + self.interval
        self.step, self.tokens, self.stale, self.last_eval_step = 0, 0, 0, 0
        self.step_cost: Optional[float] = None  # smoothed seconds per step
        self.order: list[int] = []  # the epoch's remaining example indices
        self.recent_losses: list[float] = []  # train losses since the last validation

    def loop(self) -> str:
        """Step and validate until the budget ends (``budget``) or validation stops
        improving (``early_stop``)."""
        budget = self.config.budget_s
        while True:
            now = time.perf_counter()
            # Always keep room for one more validation, so the last steps are judged too.
            if now - self.start + (self.step_cost or 0.0) + self.eval_cost > budget:
                if self.step > self.last_eval_step and now - self.start + self.eval_cost <= budget:
                    self.validate(now)
                return "budget"
            if now >= self.next_eval and self.step > self.last_eval_step:
                self.validate(now)
                if self.stale >= self.config.patience:
                    return "early_stop"
                self.next_eval = time.perf_counter() + self.interval
                continue
            self.train_step()

    def validate(self, now: float) -> float:
        """Validation loss now; keeps the LoRA weights if they are the best so far."""
        val = evaluate(self.model, self.val_items, self.config.batch_size, self.pad_id)
        self.eval_cost = time.perf_counter() - now
        self.history.append({"seconds": time.perf_counter() - self.start, "step": self.step,
                             "train_loss": sum(self.recent_losses) / max(len(self.recent_losses), 1),
                             "val_loss": val})
        self.recent_losses, self.last_eval_step = [], self.step
        if val < self.best - 1e-4:
            self.best, self.best_step, self.best_state, self.stale = val, self.step, lora_state(self.model), 0
        else:
            self.stale += 1
        if self.on_progress:
            self.on_progress({**self.history[-1], "kind": "eval", "best": self.best, "budget_s": self.config.budget_s,
                              "tokens_per_s": self.tokens / (time.perf_counter() - self.start)})
        return val

    def train_step(self) -> None:
        """One optimizer step on the next batch (a new shuffled epoch when one ends)."""
        if not self.order:
            self.order = list(range(len(self.train_items)))
            self.rng.shuffle(self.order)
        picked = [self.train_items[self.order.pop()] for _ in range(min(self.config.batch_size, len(self.order)))]
        step_start = time.perf_counter()
        self.model.train()
        input_ids, labels, mask = _batch(picked, self.pad_id)
        loss = self.model(input_ids=input_ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.step += 1
        self.tokens += int(mask.sum())
        self.recent_losses.append(loss.item())
        cost = time.perf_counter() - step_start
        self.step_cost = cost if self.step_cost is None else 0.7 * self.step_cost + 0.3 * cost
        if self.on_progress:
            elapsed = time.perf_counter() - self.start
            self.on_progress({"kind": "step", "seconds": elapsed, "step": self.step,
                              "train_loss": self.recent_losses[-1], "best": self.best,
                              "budget_s": self.config.budget_s, "tokens_per_s": self.tokens / elapsed})

    def result(self, stopped: str) -> TrainResult:
        """What happened, with the best LoRA weights."""
        return TrainResult(initial_val_loss=self.initial, best_val_loss=self.best, best_step=self.best_step,
                           steps=self.step, train_seconds=time.perf_counter() - self.start,
                           trained_tokens=self.tokens, stopped=stopped, history=self.history,
                           best_state=self.best_state)


def train_lora(model, tokenizer, dataset: Dataset, config: TrainConfig,
               on_progress: Optional[Callable[[dict], None]] = None) -> TrainResult:
    """Train ``model`` (already LoRA-wrapped) on ``dataset`` until the budget ends or
    validation stops improving. Ctrl-C ends training and keeps the best so far."""
    run = _TrainingRun(model, tokenizer, dataset, config, on_progress)
    try:
        stopped = run.loop()
    except KeyboardInterrupt:
        stopped = "interrupted"
    return run.result(stopped)


def perplexity(loss: float) -> float:
    """exp(mean token loss)."""
    return math.exp(loss)
