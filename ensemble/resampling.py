"""Resampling shared by the honest estimates: the repeated stratified folds every procedure is
cross-validated on, and exact bounds on an accuracy difference.

Below :mod:`ensemble.estimate` (weights) and :mod:`ensemble.priors` (class-prior adjustments),
which both use them; imports neither.
"""

from __future__ import annotations

import numpy as np

from .errors import EnsembleError

__all__ = ["repeated_folds", "discordance_interval"]


def repeated_folds(y: np.ndarray, folds: int, repeats: int, seed: int):
    """(k, splits): ``repeats`` x k stratified folds of the rows of ``y`` (scikit-learn's
    ``RepeatedStratifiedKFold``), k capped at the size of the rarest class."""
    from sklearn.model_selection import RepeatedStratifiedKFold

    counts = np.bincount(y)
    smallest = int(counts[counts > 0].min())
    k = min(folds, smallest)
    if k < 2:
        raise EnsembleError(f"cross-validation needs at least 2 validation rows of every class; the rarest has "
                            f"{smallest}; add validation rows or merge rare classes")
    return k, list(RepeatedStratifiedKFold(n_splits=k, n_repeats=repeats, random_state=seed).split(np.zeros(len(y)), y))


def discordance_interval(diff: np.ndarray, confidence: float) -> tuple[float, float]:
    """Bounds on an accuracy difference from exact (Clopper-Pearson) intervals on the rates of
    rows each side wins: [low(B) - high(C), high(B) - low(C)], each at 1 - alpha/2.

    ``diff`` is the per-row difference in correctness (averaged over repeats, so it may be
    fractional). When few rows differ the percentile bootstrap collapses (three rows won, none
    lost: every resample shows a gain, and no rows differing gives [0, 0]); these bounds say
    what so few rows can and cannot rule out.
    """
    from scipy.stats import beta

    n = len(diff)
    alpha = (1 - confidence) / 2

    def cp(k: float) -> tuple[float, float]:
        lo = 0.0 if k <= 0 else float(beta.ppf(alpha / 2, k, n - k + 1))
        hi = 1.0 if k >= n else float(beta.ppf(1 - alpha / 2, k + 1, n - k))
        return lo, hi

    b_lo, b_hi = cp(float(np.clip(diff, 0, None).sum()))
    c_lo, c_hi = cp(float(np.clip(-diff, 0, None).sum()))
    return b_lo - c_hi, b_hi - c_lo
