"""Resampling shared by the honest estimates: the folds a procedure is cross-validated on
(:class:`FoldPlan`: repeated stratified K-fold over the validation rows by default, or folds
given by the caller, such as the training folds of K-fold models), and exact bounds on an
accuracy difference.

Below :mod:`ensemble.procedure` and the estimates (:mod:`ensemble.estimate`,
:mod:`ensemble.priors`), which use them; imports none of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .errors import EnsembleError
from .scores import resampled_scores

__all__ = ["FoldPlan", "fold_plan", "repeated_folds", "discordance_interval", "BOOTSTRAP_ROWS", "normal_interval",
           "score_difference_interval"]

# Up to this many rows the interval of a mean difference is a paired percentile bootstrap; above,
# where the bootstrap's resampling alone takes tens of seconds, the normal interval it converges to.
BOOTSTRAP_ROWS = 10_000


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


@dataclass(frozen=True)
class FoldPlan:
    """The folds a procedure is cross-validated on: ``repeats`` rounds of K (train, test) row
    index pairs, each round holding every row out exactly once.

    Attributes
    ----------
    rounds : tuple of tuples of (ndarray, ndarray)
        ``rounds[r][i]`` is the (train, test) pair of fold i in round r.
    kind : str
        "repeated stratified" (:meth:`repeated_stratified`) or "given" (:meth:`from_assignment`).
    """

    rounds: tuple
    kind: str = "given"

    @property
    def repeats(self) -> int:
        return len(self.rounds)

    @property
    def k(self) -> int:
        return len(self.rounds[0])

    @classmethod
    def repeated_stratified(cls, y: np.ndarray, folds: int = 5, repeats: int = 2, seed: int = 0) -> FoldPlan:
        """``repeats`` x K stratified folds of the rows of ``y`` (scikit-learn's
        ``RepeatedStratifiedKFold``), K capped at the size of the rarest class."""
        k, splits = repeated_folds(y, folds, repeats, seed)
        return cls(tuple(tuple(splits[r * k:(r + 1) * k]) for r in range(repeats)), "repeated stratified")

    @classmethod
    def from_assignment(cls, fold: Sequence[int]) -> FoldPlan:
        """One round from a fold number per row (for example the folds K-fold models were
        trained on: fold k's model never saw the rows numbered k)."""
        fold = np.asarray(fold)
        if fold.ndim != 1 or not np.issubdtype(fold.dtype, np.integer):
            raise EnsembleError(f"folds must be one integer fold number per row, got an array of {fold.dtype} and "
                                f"shape {fold.shape}")
        numbers = np.unique(fold)
        if len(numbers) < 2:
            raise EnsembleError(f"folds: cross-validation needs at least 2 folds, got {len(numbers)}")
        rows = np.arange(len(fold))
        return cls((tuple((rows[fold != f], rows[fold == f]) for f in numbers),), "given")

    def check(self, n: int) -> None:
        """A one-line error unless every round holds each of the ``n`` rows out exactly once and
        trains on the others."""
        for r, pairs in enumerate(self.rounds):
            held = np.zeros(n, dtype=np.int64)
            for train, test in pairs:
                if len(test) == 0 or len(train) == 0:
                    raise EnsembleError(f"folds: round {r + 1} has a fold with no {'test' if len(test) == 0 else 'training'} rows")
                if np.min(test) < 0 or np.max(test) >= n or np.intersect1d(train, test).size:
                    raise EnsembleError(f"folds: round {r + 1} has a fold whose rows are not rows 0..{n - 1} held out "
                                        "from its own training rows")
                held[test] += 1
            if not np.all(held == 1):
                bad = int(np.flatnonzero(held != 1)[0])
                raise EnsembleError(f"folds: round {r + 1} holds row {bad} out {int(held[bad])} times; every row must "
                                    "be held out exactly once per round")


def fold_plan(splits, y: np.ndarray, folds: int = 5, repeats: int = 2, seed: int = 0) -> FoldPlan:
    """The folds to cross-validate on: ``splits`` as given (a :class:`FoldPlan`, or a fold number
    per row), checked against the ``len(y)`` rows; or, when None, ``repeats`` x ``folds``
    repeated stratified folds of ``y``."""
    if splits is None:
        return FoldPlan.repeated_stratified(y, folds, repeats, seed)
    if not isinstance(splits, FoldPlan) and len(splits) != len(y):
        raise EnsembleError(f"folds: got {len(splits)} fold numbers for {len(y)} rows; give one per row, in row order")
    plan = splits if isinstance(splits, FoldPlan) else FoldPlan.from_assignment(splits)
    plan.check(len(y))
    return plan


def normal_interval(d: np.ndarray, confidence: float, w: np.ndarray | None = None) -> tuple[float, float]:
    """The normal interval of the (weighted) mean of ``d``: the delta method for a ratio mean,
    what the percentile bootstrap converges to on many rows."""
    from scipy.stats import norm

    w = np.ones(len(d)) if w is None else w
    g = float((d * w).sum() / w.sum())
    se = float(np.sqrt(np.sum((w * (d - g)) ** 2)) / w.sum())
    z = float(norm.ppf(0.5 + confidence / 2))
    return g - z * se, g + z * se


def score_difference_interval(metric: str, pred_a: np.ndarray, pred_b: np.ndarray, y: np.ndarray, C: int, *,
                              w: np.ndarray | None = None, classes: str = "support", confidence: float = 0.95,
                              n_resamples: int = 1000, seed: int = 0) -> tuple[float, float]:
    """Paired percentile bootstrap interval of ``metric`` (accuracy or macro-F1 of predicted
    classes, see :func:`~ensemble.scores.resampled_scores`) of ``pred_a`` minus ``pred_b``,
    every resample scored at once, in batches of about 32 MB."""
    from scipy.stats import bootstrap

    def stat(idx, axis=-1):
        idx = np.asarray(idx).astype(np.int64)
        d = (resampled_scores(pred_a, y, C, idx, w, classes=classes)[metric]
             - resampled_scores(pred_b, y, C, idx, w, classes=classes)[metric])
        return d if idx.ndim > 1 else d[0]

    res = bootstrap((np.arange(len(y)),), stat, vectorized=True, confidence_level=confidence, n_resamples=n_resamples,
                    method="percentile", random_state=seed, batch=max(1, 4_000_000 // max(1, len(y))))
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


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
