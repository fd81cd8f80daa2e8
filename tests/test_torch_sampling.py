"""The CIM engine's sampler: logit bias, repeat penalty, greedy, top-k and top-p, seeded."""
import torch

from assistant.models.generation import SamplingParams
from assistant.models.torch_sampling import pick_token


def _draws(logits, params, history=(), n=400):
    generator = torch.Generator().manual_seed(0)
    return {pick_token(logits, list(history), params, generator) for _ in range(n)}


def test_greedy_bias_and_repeat_penalty():
    logits = torch.tensor([1.0, 3.0, 2.9, -1.0])
    greedy = SamplingParams(temperature=0.0, repeat_penalty=1.0)
    assert pick_token(logits, [], greedy, None) == 1
    assert pick_token(logits, [], SamplingParams(temperature=0.0, repeat_penalty=1.0, logit_bias=((3, 10.0),)), None) == 3
    # 3.0 / 1.1 < 2.9: the token just said loses to the runner-up.
    assert pick_token(logits, [1], SamplingParams(temperature=0.0, repeat_penalty=1.1), None) == 2
    assert torch.equal(logits, torch.tensor([1.0, 3.0, 2.9, -1.0]))  # the caller's logits are untouched


def test_top_k_top_p_and_seed():
    logits = torch.tensor([2.0, 1.9, 1.8, 0.0, -5.0])
    assert _draws(logits, SamplingParams(temperature=1.0, top_k=2, top_p=1.0, repeat_penalty=1.0)) == {0, 1}
    assert _draws(logits, SamplingParams(temperature=1.0, top_k=0, top_p=1.0, repeat_penalty=1.0)) >= {0, 1, 2, 3}
    # top_p keeps the smallest head reaching the mass: here the first token alone.
    assert _draws(logits, SamplingParams(temperature=1.0, top_k=0, top_p=0.1, repeat_penalty=1.0)) == {0}
    params = SamplingParams(temperature=1.0, top_k=0, top_p=1.0, repeat_penalty=1.0)

    def sequence(seed):
        generator = torch.Generator().manual_seed(seed)
        return [pick_token(logits, [], params, generator) for _ in range(30)]

    assert sequence(5) == sequence(5) and sequence(5) != sequence(6)
