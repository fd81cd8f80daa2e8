"""Datasets for the reproduction: scikit-learn's bundled 8x8 handwritten digits.

The digits set (1,797 images, 10 classes) ships inside scikit-learn, so no download is
needed. Pixels (0..16) are scaled to ``[0, 1]``; the split is stratified and seeded.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class Split:
    """Train/test tensors: images ``(N, 1, 8, 8)`` in ``[0, 1]`` and integer labels."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor


def load_digits_split(test_fraction: float = 0.2, seed: int = 0) -> Split:
    """Load the scikit-learn digits and split them (stratified, seeded)."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    data = load_digits()
    x = torch.tensor(data.images, dtype=torch.float32).unsqueeze(1) / 16.0
    y = torch.tensor(data.target, dtype=torch.long)
    idx_train, idx_test = train_test_split(
        torch.arange(len(y)).numpy(), test_size=test_fraction, random_state=seed, stratify=y.numpy()
    )
    return Split(x[idx_train], y[idx_train], x[idx_test], y[idx_test])
