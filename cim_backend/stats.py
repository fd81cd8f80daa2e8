"""Intervals for chip accuracies: a paired bootstrap over chips x test images, fold by fold.

A method's outcome on one fold is a 0/1 matrix ``correct[chip, image]``. One bootstrap
replicate draws, inside every fold, chips with replacement and test images with replacement
(the same draws for every method, so differences are paired) and recomputes the mean accuracy
over all folds (weighted by each fold's images). The digital reference is a 0/1 vector per
image and is resampled with the same image draws. Percentile intervals at 95%.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

LEVEL = 0.95


@dataclass
class Draws:
    """Bootstrap weights: per fold, chip counts ``(R, C)`` and image counts ``(R, N_f)``."""

    chips: list[np.ndarray]
    images: list[np.ndarray]

    @property
    def replicates(self) -> int:
        """Number of replicates R."""
        return self.chips[0].shape[0]


def draw(chips_per_fold: list[int], images_per_fold: list[int], replicates: int = 2000, seed: int = 0) -> Draws:
    """Multinomial resampling weights for every fold (shared by all methods)."""
    rng = np.random.default_rng(seed)
    chips = [rng.multinomial(c, np.full(c, 1.0 / c), size=replicates).astype(np.float32) for c in chips_per_fold]
    images = [rng.multinomial(n, np.full(n, 1.0 / n), size=replicates).astype(np.float32) for n in images_per_fold]
    return Draws(chips, images)


def replicate_accuracy(correct: list[np.ndarray], draws: Draws) -> np.ndarray:
    """Mean accuracy over folds for every replicate, shape ``(R,)``."""
    total = np.zeros(draws.replicates)
    images = 0
    for m, wc, wi in zip(correct, draws.chips, draws.images):
        m = np.asarray(m, dtype=np.float32)
        c, n = m.shape
        total += np.einsum("rc,ci,ri->r", wc, m, wi, optimize=True) / c
        images += n
    return total / images


def replicate_reference(reference: list[np.ndarray], draws: Draws) -> np.ndarray:
    """Accuracy of a chip-free (digital) model for every replicate, shape ``(R,)``."""
    total = np.zeros(draws.replicates)
    images = 0
    for r, wi in zip(reference, draws.images):
        total += wi @ np.asarray(r, dtype=np.float32)
        images += len(r)
    return total / images


def interval(samples: np.ndarray) -> tuple[float, float]:
    """Percentile interval of bootstrap ``samples`` at ``LEVEL``."""
    tail = (1.0 - LEVEL) / 2.0 * 100.0
    lo, hi = np.percentile(samples, [tail, 100.0 - tail], method="inverted_cdf")  # no interpolation: inf stays inf
    return float(lo), float(hi)


def point_accuracy(correct: list[np.ndarray]) -> float:
    """Mean over chips of each fold, weighted by the fold's images (the estimate itself)."""
    num = sum(float(np.asarray(m, dtype=np.float64).mean(axis=0).sum()) for m in correct)
    return num / sum(np.asarray(m).shape[1] for m in correct)


def point_reference(reference: list[np.ndarray]) -> float:
    """Accuracy of the digital reference over all folds' images."""
    return float(np.concatenate([np.asarray(r, dtype=np.float64) for r in reference]).mean())


def ratio_interval(numerator: np.ndarray, denominator: np.ndarray) -> tuple[float, float]:
    """Interval of ``numerator / denominator`` over replicates; a denominator <= 0 counts as +inf.

    A gap ratio "N x" is claimed only when the lower bound is >= N; when the smaller gap can be
    zero or negative the ratio is unbounded above, which this makes explicit.
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(denominator > 0, numerator / np.where(denominator > 0, denominator, 1.0), np.inf)
    return interval(ratio)


def is_tie(difference_samples: np.ndarray) -> bool:
    """True when the paired difference's interval contains 0."""
    lo, hi = interval(difference_samples)
    return lo <= 0.0 <= hi
