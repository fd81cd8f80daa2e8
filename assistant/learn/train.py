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


def train_lora(model, tokenizer, dataset: Dataset, config: TrainConfig,
               on_progress: Optional[Callable[[dict], None]] = None) -> TrainResult:
    """Train ``model`` (already LoRA-wrapped) on ``dataset`` until the budget ends or
    validation stops improving. Ctrl-C ends training and keeps the best so far."""
    import torch

    torch.manual_seed(config.seed)
    pad_id = tokenizer.pad_token_id
    train_items = encode(tokenizer, dataset.train, config.max_tokens)
    rng = random.Random(config.seed)
    val_items = encode(tokenizer, dataset.validation, config.max_tokens)
    val_items = rng.sample(val_items, min(len(val_items), config.max_validation_examples))
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=config.learning_rate)

    start = time.perf_counter()
    initial = evaluate(model, val_items, config.batch_size, pad_id)
    eval_cost = time.perf_counter() - start
    best, best_step, best_state = initial, 0, lora_state(model)
    history = [{"seconds": eval_cost, "step": 0, "train_loss": None, "val_loss": initial}]
    interval = config.budget_s / max(config.evaluations, 1)
    step, tokens, stale, stopped, step_cost = 0, 0, 0, "budget", None
    next_eval = time.perf_counter() + interval
    order: list[int] = []
    recent_losses: list[float] = []
    last_eval_step = 0

    def validate(now: float) -> float:
        nonlocal best, best_step, best_state, stale, eval_cost, recent_losses, last_eval_step
        val = evaluate(model, val_items, config.batch_size, pad_id)
        eval_cost = time.perf_counter() - now
        history.append({"seconds": time.perf_counter() - start, "step": step,
                        "train_loss": sum(recent_losses) / max(len(recent_losses), 1), "val_loss": val})
        recent_losses, last_eval_step = [], step
        if val < best - 1e-4:
            best, best_step, best_state, stale = val, step, lora_state(model), 0
        else:
            stale += 1
        if on_progress:
            on_progress({**history[-1], "kind": "eval", "best": best, "budget_s": config.budget_s,
                         "tokens_per_s": tokens / (time.perf_counter() - start)})
        return val

    try:
        while True:
            now = time.perf_counter()
            # Always keep room for one more validation, so the last steps are judged too.
            if now - start + (step_cost or 0.0) + eval_cost > config.budget_s:
                if step > last_eval_step and now - start + eval_cost <= config.budget_s:
                    validate(now)
                break
            if now >= next_eval and step > last_eval_step:
                validate(now)
                if stale >= config.patience:
                    stopped = "early_stop"
                    break
                next_eval = time.perf_counter() + interval
                continue
            if not order:
                order = list(range(len(train_items)))
                rng.shuffle(order)
            picked = [train_items[order.pop()] for _ in range(min(config.batch_size, len(order)))]
            step_start = time.perf_counter()
            model.train()
            input_ids, labels, mask = _batch(picked, pad_id)
            loss = model(input_ids=input_ids, attention_mask=mask, labels=labels).loss
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            tokens += int(mask.sum())
            recent_losses.append(loss.item())
            cost = time.perf_counter() - step_start
            step_cost = cost if step_cost is None else 0.7 * step_cost + 0.3 * cost
            if on_progress:
                elapsed = time.perf_counter() - start
                on_progress({"kind": "step", "seconds": elapsed, "step": step, "train_loss": recent_losses[-1],
                             "best": best, "budget_s": config.budget_s, "tokens_per_s": tokens / elapsed})
    except KeyboardInterrupt:
        stopped = "interrupted"
    return TrainResult(initial_val_loss=initial, best_val_loss=best, best_step=best_step, steps=step,
                       train_seconds=time.perf_counter() - start, trained_tokens=tokens, stopped=stopped,
                       history=history, best_state=best_state)


def perplexity(loss: float) -> float:
    """exp(mean token loss)."""
    return math.exp(loss)
