"""Picking the next token from torch logits with the generation API's sampling parameters,
as llama.cpp's sampler chain does for the GGUF engine: logit bias, repeat penalty over the
recent tokens, then greedy (temperature <= 0) or top-k, top-p and temperature sampling."""
from __future__ import annotations

from typing import Sequence

from assistant.models.generation import SamplingParams

REPEAT_WINDOW = 64  # recent tokens the repeat penalty looks at (llama.cpp's default last_n)


def pick_token(logits, history: Sequence[int], params: SamplingParams, generator) -> int:
    """The next token id from ``logits`` (a 1-D float tensor, not modified) after ``history``."""
    import torch

    scores = logits.detach().clone().float()
    for token, bias in params.logit_bias:
        scores[token] += bias
    if params.repeat_penalty != 1.0 and history:
        seen = torch.tensor(sorted(set(history[-REPEAT_WINDOW:])), dtype=torch.long)
        picked = scores[seen]
        scores[seen] = torch.where(picked > 0, picked / params.repeat_penalty, picked * params.repeat_penalty)
    if params.temperature <= 0:
        return int(scores.argmax())
    if 0 < params.top_k < scores.numel():
        kth = torch.topk(scores, params.top_k).values[-1]
        scores[scores < kth] = float("-inf")
    probs = torch.softmax(scores / params.temperature, dim=-1)
    if params.top_p < 1.0:
        ordered, order = probs.sort(descending=True)
        # Keep the smallest head whose mass reaches top_p (the first token always stays).
        drop = ordered.cumsum(0) - ordered >= params.top_p
        probs[order[drop]] = 0.0
        probs = probs / probs.sum()
    return int(torch.multinomial(probs, 1, generator=generator))
