"""How well entity spans score, estimated over rows (texts), never over tokens or characters.

Micro entity F-beta is a ratio of sums over rows, so each row is kept as its counts (true
positives, predicted, true): a bootstrap resamples rows and sums their counts, a paired one gives
two methods the same resamples, and a weight rule is estimated honestly by fitting it on the
other folds' rows and scoring the held-out rows' spans, pooled over folds.

Weight rules (``methods``):

``uniform``
    Every member the same weight (nothing fitted).
``f1``
    Each member weighted by its entity F-beta on the fitting rows.
``best``
    The member with the highest entity F-beta on the fitting rows alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

import numpy as np

from ensemble.core.errors import EnsembleError
from ensemble.tasks.entities.spans import Span

__all__ = ["METHODS", "row_counts", "micro_f", "resampled_f", "EntityEstimate", "method_weights", "estimate_methods"]

METHODS = ("uniform", "f1", "best")


def row_counts(true: Sequence[Sequence[Span]], pred: Sequence[Sequence[Span]]) -> np.ndarray:
    """Each row's (true positives, predicted, true) entity counts, exact span and type: (n, 3) int64."""
    if len(true) != len(pred):
        raise EnsembleError(f"got {len(pred)} rows of predicted spans for {len(true)} rows of true ones")
    out = np.zeros((len(true), 3), dtype=np.int64)
    for i, (t, p) in enumerate(zip(true, pred)):
        t_set, p_set = set(map(tuple, t)), set(map(tuple, p))
        out[i] = len(t_set & p_set), len(p_set), len(t_set)
    return out


def micro_f(counts: np.ndarray, beta: float = 1.0) -> np.ndarray:
    """Micro entity F-beta of summed counts (..., 3), as :func:`~ensemble.tasks.entities.spans.entity_scores`
    gives it: precision or recall 0 where nothing was predicted or nothing is true."""
    counts = np.asarray(counts, dtype=np.float64)
    tp, predicted, actual = counts[..., 0], counts[..., 1], counts[..., 2]
    with np.errstate(invalid="ignore", divide="ignore"):
        p = np.where(predicted > 0, tp / predicted, 0.0)
        r = np.where(actual > 0, tp / actual, 0.0)
        return np.where(p + r > 0, (1 + beta ** 2) * p * r / (beta ** 2 * p + r), 0.0)


def resampled_f(counts: Mapping[str, np.ndarray], *, beta: float = 1.0, n_resamples: int = 2000,
                seed: int = 0) -> dict[str, np.ndarray]:
    """Each method's micro F-beta on the same ``n_resamples`` bootstrap resamples of the rows
    (``counts[method]``: its (n, 3) :func:`row_counts`): {method: (n_resamples,)}."""
    n = len(next(iter(counts.values())))
    rng = np.random.default_rng(seed)
    out = {m: np.empty(n_resamples) for m in counts}
    for lo in range(0, n_resamples, 256):  # resamples as row multiplicities, a block at a time
        hi = min(n_resamples, lo + 256)
        draws = rng.multinomial(n, np.full(n, 1.0 / n), size=hi - lo).astype(np.float64)
        for m, c in counts.items():
            out[m][lo:hi] = micro_f(draws @ np.asarray(c, dtype=np.float64), beta)
    return out


@dataclass
class EntityEstimate:
    """One method's entity F-beta on the scored rows with a percentile bootstrap interval, and its
    paired difference from the reference method (the best single member) with its interval."""

    method: str
    f: float
    interval: tuple[float, float]
    gain: float
    gain_interval: tuple[float, float]

    @property
    def sure_gain(self) -> bool:
        """Whether the whole interval of the gain is above 0."""
        return self.gain_interval[0] > 0


def method_weights(method: str, member_f: np.ndarray) -> np.ndarray:
    """A weight rule's member weights from the members' F-beta on the fitting rows."""
    member_f = np.asarray(member_f, dtype=np.float64)
    if method == "uniform":
        return np.ones(len(member_f))
    if method == "f1":
        return member_f if member_f.sum() > 0 else np.ones(len(member_f))
    if method == "best":
        return (np.arange(len(member_f)) == int(np.argmax(member_f))).astype(np.float64)
    raise EnsembleError(f"method must be one of {', '.join(METHODS)}; got {method!r}")


def estimate_methods(member_spans: Sequence[Sequence[Sequence[Span]]], true: Sequence[Sequence[Span]],
                     spans_with: Callable[[np.ndarray, np.ndarray], list], *, methods: Sequence[str] = METHODS,
                     folds: int = 5, beta: float = 1.0, n_resamples: int = 2000, seed: int = 0,
                     confidence: float = 0.95) -> dict[str, EntityEstimate]:
    """Every weight rule estimated honestly over rows, against the best single member.

    Parameters
    ----------
    member_spans : per member, each row's decoded spans
    true : each row's gold spans (n rows)
    spans_with : callable
        ``spans_with(weights (M,), rows (r,))``: the spans of ``rows`` under the members' mean
        with ``weights``.
    folds : int
        Rows are split in ``folds`` folds (shuffled by ``seed``); a rule is fitted on the other
        folds' rows and decodes the held-out ones.

    Returns
    -------
    dict
        {"member <name>" for the best member, and each method: :class:`EntityEstimate`}; the
        best member is chosen out of fold too, so its figure carries the same choice.
    """
    n = len(true)
    if n < folds:
        raise EnsembleError(f"{n} labelled rows cannot be split in {folds} folds; give more rows or fewer folds")
    member_counts = [row_counts(true, s) for s in member_spans]
    fold = np.random.default_rng(seed).permutation(n) % folds
    counts = {m: np.zeros((n, 3), dtype=np.int64) for m in methods}
    for k in range(folds):
        held, fit = np.flatnonzero(fold == k), np.flatnonzero(fold != k)
        member_f = np.array([micro_f(c[fit].sum(axis=0), beta) for c in member_counts])
        for m in methods:
            counts[m][held] = row_counts([true[i] for i in held], spans_with(method_weights(m, member_f), held))
    reference = counts.get("best")
    if reference is None:
        reference = np.zeros((n, 3), dtype=np.int64)
        for k in range(folds):
            held, fit = np.flatnonzero(fold == k), np.flatnonzero(fold != k)
            best = int(np.argmax([micro_f(c[fit].sum(axis=0), beta) for c in member_counts]))
            reference[held] = member_counts[best][held]
    draws = resampled_f({**counts, "\0reference": reference}, beta=beta, n_resamples=n_resamples, seed=seed + 1)
    tail = (1 - confidence) / 2
    ref_f = float(micro_f(reference.sum(axis=0), beta))
    out = {}
    for m, c in counts.items():
        f = float(micro_f(c.sum(axis=0), beta))
        d = draws[m] - draws["\0reference"]
        out[m] = EntityEstimate(m, f, tuple(np.quantile(draws[m], [tail, 1 - tail]).tolist()), f - ref_f,
                                tuple(np.quantile(d, [tail, 1 - tail]).tolist()))
    return out

