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


def vgg_digits(base: int = 16, classes: int = 10) -> nn.Sequential:
    """A VGG-style CNN for the native 8x8 digits: six 3x3 conv layers in three stages, one FC.

    With ``base=16``: conv 1->16->16, pool, 16->32->32, pool, 32->64->64, pool, fc 64->10,
    i.e. 72,208 weights over seven layers whose widths (16, 32, 64, 10) straddle the TSB
    width, so the sharing rule is exercised across widths and depth.
    """
    def stage(cin: int, cout: int) -> list[nn.Module]:
        return [nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU(), nn.Conv2d(cout, cout, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)]

    return nn.Sequential(
        *stage(1, base), *stage(base, 2 * base), *stage(2 * base, 4 * base),
        nn.Flatten(),
        nn.Linear(4 * base, classes),
    )


NETWORKS = {"lenet": lenet_digits, "vgg": vgg_digits}


def build_network(name: str) -> nn.Sequential:
    """A fresh network by name (``lenet`` or ``vgg``)."""
    from .errors import CIMConfigError

    try:
        return NETWORKS[name]()
    except KeyError:
        raise CIMConfigError(f"unknown network {name!r}; choose from {sorted(NETWORKS)}") from None
