"""Resampling shared by the honest estimates: the folds a procedure is cross-validated on
(:class:`FoldPlan`: repeated stratified K-fold over the validation rows by default, or folds
given by the caller, such as the training folds of K-fold models), and exact bounds on an
accuracy difference.

Below :mod:`ensemble.tasks.classification.procedure` and the estimates (:mod:`ensemble.tasks.classification.estimate`,
:mod:`ensemble.tasks.classification.offset_choice`), which use them; imports none of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ensemble.core.errors import EnsembleError
from ensemble.core.scores import resampled_scores

__all__ = ['FoldPlan', 'fold_plan', 'repeated_folds', 'discordance_interval', 'BOOTSTRAP_ROWS', 'ONE_REPEAT_ROWS', 'default_repeats', 'normal_interval', 'delta_difference_interval', 'score_difference_interval', 'metric_interval', 'interval_words', 'gain_words']

# Up to this many rows the interval of a mean difference is a paired percentile bootstrap; above,
# where the bootstrap's resampling alone takes tens of seconds, the normal interval it converges to.
BOOTSTRAP_ROWS = 10_000

# Above this many rows the estimates cross-validate one round of folds instead of two by default:
# a second shuffle moves the estimate by under a tenth of a point there (benchmarks/bench_many_classes.py)
# and doubles the cost.
ONE_REPEAT_ROWS = 10_000


def default_repeats(n: int) -> int:
    """Rounds of folds when none are asked for: 2 up to :data:`ONE_REPEAT_ROWS` rows, 1 above."""
    return 2 if n <= ONE_REPEAT_ROWS else 1


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
        if (fold < 0).any():
            row = int(np.flatnonzero(fold < 0)[0])
            raise EnsembleError(f"folds: row {row + 1} has fold {int(fold[row])}; fold numbers are 0, 1, ..., k-1 (a "
                                "negative number is no fold)")
        numbers = np.unique(fold)
        if len(numbers) < 2:
            raise EnsembleError(f"folds: cross-validation needs at least 2 folds, but every row is in fold "
                                f"{int(numbers[0]) if len(numbers) else '?'}")
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


def fold_plan(splits, y: np.ndarray, folds: int = 5, repeats: int | None = None, seed: int = 0) -> FoldPlan:
    """The folds to cross-validate on: ``splits`` as given (a :class:`FoldPlan`, or a fold number
    per row), checked against the ``len(y)`` rows; or, when None, ``repeats`` x ``folds``
    repeated stratified folds of ``y`` (``repeats`` None: :func:`default_repeats`)."""
    if splits is None:
        return FoldPlan.repeated_stratified(y, folds, default_repeats(len(y)) if repeats is None else repeats, seed)
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
    classes, see :func:`~ensemble.core.scores.resampled_scores`) of ``pred_a`` minus ``pred_b``,
    every resample scored at once, in batches of about 32 MB. Above :data:`BOOTSTRAP_ROWS`
    rows, the normal interval it converges to (:func:`delta_difference_interval`)."""
    if len(y) > BOOTSTRAP_ROWS:
        return delta_difference_interval(metric, pred_a, pred_b, y, C, w=w, classes=classes, confidence=confidence)
    from scipy.stats import bootstrap

    def stat(idx, axis=-1):
        idx = np.asarray(idx).astype(np.int64)
        d = (resampled_scores(pred_a, y, C, idx, w, classes=classes)[metric]
             - resampled_scores(pred_b, y, C, idx, w, classes=classes)[metric])
        return d if idx.ndim > 1 else d[0]

    res = bootstrap((np.arange(len(y)),), stat, vectorized=True, confidence_level=confidence, n_resamples=n_resamples,
                    method="percentile", random_state=seed, batch=max(1, 4_000_000 // max(1, len(y))))
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def metric_interval(metric: str, proba: np.ndarray, y: np.ndarray, *, against: np.ndarray | None = None,
                    confidence: float = 0.95, n_resamples: int = 1000, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval over the rows of a classification metric
    (:data:`~ensemble.core.scores.CLASS_METRICS`) of ``proba`` (n, C), or, with ``against``, of
    the paired difference ``proba`` minus ``against``, signed so that positive is better. For the
    metrics that are not a mean over rows (ROC AUC, kappa, macro-F1) the whole metric is scored
    on every resample, many at once (:func:`~ensemble.core.scores.resampled_metric`); resamples
    where it is undefined (one class only) are left out."""
    from ensemble.core.scores import CLASS_METRICS, resampled_metric

    y = np.asarray(y)
    n = len(y)
    sign = 1 if CLASS_METRICS[metric] else -1
    rng = np.random.default_rng(seed)
    step = max(1, 4_000_000 // max(1, n))
    parts = []
    for lo in range(0, n_resamples, step):
        idx = rng.integers(0, n, (min(step, n_resamples - lo), n))
        v = resampled_metric(metric, proba, y, idx)
        parts.append(v if against is None else sign * (v - resampled_metric(metric, against, y, idx)))
    values = np.concatenate(parts)
    values = values[np.isfinite(values)]
    if not len(values):
        return float("nan"), float("nan")
    alpha = (1 - confidence) / 2
    low, high = np.quantile(values, [alpha, 1 - alpha])
    return float(low), float(high)


def delta_difference_interval(metric: str, pred_a: np.ndarray, pred_b: np.ndarray, y: np.ndarray, C: int, *,
                              w: np.ndarray | None = None, classes: str = "support",
                              confidence: float = 0.95) -> tuple[float, float]:
    """The normal interval of ``metric`` of ``pred_a`` minus ``pred_b`` by the delta method:
    what the paired bootstrap of :func:`score_difference_interval` converges to on many rows,
    in O(n + C).

    Macro-F1 is a smooth function of per-class (weighted) means: F1_c = 2 t_c / (s_c + p_c) of
    the rates of hits, rows and predictions of class c. Row i's influence on it is
    ``(2 hit_i / D_yi - F1_yi / D_yi - F1_pi / D_pi) / |K|`` over the classes K it averages
    (D_c = s_c + p_c; the terms of classes outside K dropped); the interval is the difference
    of the two scores plus or minus z times the standard error of the difference of influences.
    """
    from scipy.stats import norm

    n = len(y)
    w = np.ones(n) if w is None else np.asarray(w, dtype=np.float64)
    W = w.sum()

    def score_and_influence(pred):
        hit = (pred == y).astype(np.float64)
        if metric == "accuracy":
            acc = float((w * hit).sum() / W)
            return acc, hit - acc
        s = np.bincount(y, weights=w, minlength=C) / W
        p = np.bincount(pred, weights=w, minlength=C) / W
        t = np.bincount(y, weights=w * hit, minlength=C) / W
        D = s + p
        keep = s > 0 if classes == "support" else D > 0
        safe = np.where(D > 0, D, 1.0)
        f1 = np.where(D > 0, 2 * t / safe, 0.0)
        score = float((f1 * keep).sum() / keep.sum())
        own = keep[y] * (2 * hit - f1[y]) / safe[y]
        predicted = keep[pred] * f1[pred] / safe[pred]
        return score, (own - predicted) / keep.sum()

    score_a, inf_a = score_and_influence(pred_a)
    score_b, inf_b = score_and_influence(pred_b)
    d = inf_a - inf_b
    d = d - (w * d).sum() / W
    se = float(np.sqrt(np.sum((w * d) ** 2)) / W)
    z = float(norm.ppf(0.5 + confidence / 2))
    gain = score_a - score_b
    return gain - z * se, gain + z * se


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


def interval_words(lo: float, hi: float) -> str:
    """How a gain's interval that is not above zero reads: a sure loss when it is below zero."""
    if hi < 0:
        return "an interval below zero: a sure loss"
    return "an interval that does not exclude zero"


def gain_words(gain: float) -> str:
    """"gains +0.0075" or "loses 0.0075": a negative gain is said as a loss."""
    return f"gains {gain:+.4f}" if gain >= 0 else f"loses {-gain:.4f}"


def check_cv(cv=5, y: np.ndarray | None = None, *, repeats: int | None = None, seed: int = 0):
    """The one place a ``cv`` argument is resolved (as scikit-learn's ``check_cv``).

    Parameters
    ----------
    cv : int, sequence of int (n,) or FoldPlan, default 5
        An int K >= 2: ``repeats`` rounds of repeated stratified K-fold of ``y`` (K capped at the
        rarest class). A fold number per row: those folds (the folds K-fold models were trained
        on). A :class:`FoldPlan`: as given.
    y : array of int, shape (n,), optional
        The labels; without them ``cv`` is only checked (up front, before any file is read).

    Returns
    -------
    FoldPlan, or ``cv`` itself when ``y`` is None
    """
    if isinstance(cv, bool) or (isinstance(cv, (int, np.integer)) and cv < 2):
        raise EnsembleError(f"cv must be K >= 2 (K-fold cross-validation), a fold number per row or a FoldPlan; "
                            f"got {cv!r}")
    if not isinstance(cv, (int, np.integer, FoldPlan)) and not (hasattr(cv, "__len__") and not isinstance(cv, str)):
        raise EnsembleError(f"cv must be K >= 2 (K-fold cross-validation), a fold number per row or a FoldPlan; "
                            f"got {type(cv).__name__} {str(cv)[:60]!r}")
    if y is None:
        return cv
    if isinstance(cv, (int, np.integer)):
        return fold_plan(None, y, int(cv), repeats, seed)
    return fold_plan(cv, y, repeats=repeats, seed=seed)


def wilson(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """The Wilson score interval of a proportion of ``k`` in ``n`` (an accuracy)."""
    from scipy.stats import binomtest

    ci = binomtest(int(k), int(n)).proportion_ci(confidence_level=confidence, method="wilson")
    return float(ci.low), float(ci.high)


def sure_gain(interval) -> bool:
    """The rule that keeps a fitted method (weights, an adjustment) over its baseline (uniform
    weights, no adjustment): the lower end of the paired interval of its gain is above zero.
    Everywhere ``auto`` chooses, it chooses by this rule."""
    return interval[0] > 0


def cv_of(cv=None, folds=None, splits=None):
    """``cv``, else the older spellings: ``splits`` (folds given), else ``folds`` (K), else 5."""
    if cv is not None:
        return cv
    if splits is not None:
        return splits
    return 5 if folds is None else folds
