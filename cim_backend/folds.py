"""Cross-fitting folds over the 1,797 digits: every image is tested exactly once.

``cross_fit_folds(k)`` cuts the digits into ``k`` stratified folds; fold ``f`` tests on its own
part and trains on the rest, of which a stratified validation share is held out for every
choice of hyperparameter (epochs, TSB width, calibration steps, write-verify selection). The
test part of a fold is never used for any choice. Folds also serve as seeds: fold ``f``
trains with seed ``f`` and programs its chips with a chip seed of its own.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .data import Split


@dataclass
class Fold:
    """One fold: ``tune`` (inner train -> validation) and ``final`` (inner train -> test)."""

    index: int
    tune: Split
    final: Split

    @property
    def seed(self) -> int:
        """Training seed of this fold."""
        return self.index

    @property
    def chip_seed(self) -> int:
        """Seed of this fold's chips (test and validation chips come from it)."""
        return 1000 + self.index


def _digits() -> tuple[torch.Tensor, torch.Tensor]:
    from sklearn.datasets import load_digits

    data = load_digits()
    x = torch.tensor(data.images, dtype=torch.float32).unsqueeze(1) / 16.0
    return x, torch.tensor(data.target, dtype=torch.long)


def cross_fit_folds(k: int = 5, val_fraction: float = 0.15, seed: int = 0, limit: int | None = None) -> list[Fold]:
    """``k`` stratified folds of the digits; ``limit`` keeps the first ``limit`` folds (quick runs)."""
    from sklearn.model_selection import StratifiedKFold, train_test_split

    x, y = _digits()
    folds = []
    splitter = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    for index, (train_idx, test_idx) in enumerate(splitter.split(x.numpy(), y.numpy())):
        if limit is not None and index >= limit:
            break
        inner, val = train_test_split(train_idx, test_size=val_fraction, random_state=seed + index, stratify=y[train_idx].numpy())
        tune = Split(x[inner], y[inner], x[val], y[val])
        final = Split(x[inner], y[inner], x[test_idx], y[test_idx])
        folds.append(Fold(index, tune, final))
    return folds
