"""Reference networks for the reproduction."""

from __future__ import annotations

from torch import nn


def lenet_digits(width: int = 32, classes: int = 10) -> nn.Sequential:
    """A LeNet-style CNN for 8x8 digits: two 3x3 conv + max-pool stages and two FC layers.

    With ``width=32``: conv 1->32, conv 32->64, fc 256->128, fc 128->10, i.e. 52,768 weights
    (biases are digital and not counted). Layer widths 32, 64, 128 and 10 are what the TSB
    sharing rule has to serve.
    """
    return nn.Sequential(
        nn.Conv2d(1, width, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(width, 2 * width, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(2 * width * 4, 4 * width),
        nn.ReLU(),
        nn.Linear(4 * width, classes),
    )


def weight_count(model: nn.Module) -> int:
    """Number of weights in Linear/Conv2d layers (the ones mapped onto crossbars)."""
    return sum(m.weight.numel() for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv2d)))
