"""How well entity spans score, estimated over rows (texts), never over tokens or characters.

Micro entity F-beta is a ratio of sums over rows, so each row is kept as its counts (true
positives, predicted, true; :func:`~ensemble.tasks.entities.spans.row_counts`): a bootstrap
resamples rows and sums their counts, a paired one gives two methods the same resamples, and a
rule (:mod:`ensemble.tasks.entities.fitting`) is estimated honestly by fitting it on the other
folds' rows and scoring the held-out rows' spans, pooled over folds. The reference is the best
single member, chosen out of fold the same way, so that its figure carries the same choice.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np

from ensemble.core.errors import EnsembleError
from ensemble.tasks.entities.fitting import METHODS, LabelledUnits, check_method, fit_rule
from ensemble.tasks.entities.spans import micro_f

__all__ = ["resampled_f", "EntityEstimate", "estimate_methods"]


def resampled_f(counts: Mapping[str, np.ndarray], *, beta: float = 1.0, n_resamples: int = 2000,
                seed: int = 0) -> dict[str, np.ndarray]:
    """Each method's micro F-beta on the same ``n_resamples`` bootstrap resamples of the rows
    (``counts[method]``: its (n, 3) row counts): {method: (n_resamples,)}."""
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
    """One method's entity F-beta on the scored rows, cross-validated, with a percentile
    bootstrap interval; its paired difference from the best single member and from uniform, each
    with its interval; and (``apparent``) the rule fitted on every row and scored on them, the
    figure a fit on validation rows shows and the estimate corrects. ``spans``: each row's spans
    as the rule fitted on the other folds decodes them, what the per-type table is of."""

    method: str
    f: float
    interval: tuple[float, float]
    gain: float
    gain_interval: tuple[float, float]
    vs_uniform: float = 0.0
    vs_uniform_interval: tuple[float, float] = (0.0, 0.0)
    apparent: float | None = None
    spans: list | None = field(default=None, repr=False)  # each row's spans, out of fold
    char_macro_f1: float | None = None  # KLUE's second metric of ``spans``, where a report computes it

    @property
    def cross_validated(self) -> float:
        return self.f

    @property
    def sure_gain(self) -> bool:
        """Whether the whole interval of the gain over the best single member is above 0."""
        return self.gain_interval[0] > 0

    @property
    def sure_gain_vs_uniform(self) -> bool:
        """Whether the whole interval of the gain over uniform is above 0 (what ``auto`` asks)."""
        return self.vs_uniform_interval[0] > 0


def estimate_methods(units: LabelledUnits, methods: Sequence[str] = METHODS, *, thresholds=False,
                     folds: int | Sequence[int] = 5, n_resamples: int = 2000, seed: int = 0, confidence: float = 0.95,
                     apparent: bool = False) -> dict[str, EntityEstimate]:
    """Every rule of ``methods`` (with O thresholds fitted per type when ``thresholds`` is True, or
    the thresholds given: a number, or ``{type: number}``) estimated over the rows
    of ``units``: fitted on ``folds - 1`` folds (rows shuffled by ``seed``; or the fold of each
    row given, as fold groups' training folds), its spans on the held-out fold scored, pooled; against the best single member chosen the same way and decoded
    by plain argmax, as it would be submitted alone (with ``thresholds`` the difference includes
    what the fitted thresholds add, not only what the ensemble does); and against uniform (with
    the same thresholds rule), paired on the same resamples. ``apparent``: also fit each rule on
    every row and score it there.

    Returns
    -------
    dict
        {method: :class:`EntityEstimate`}.
    """
    for m in methods:
        check_method(m)
    if not 0 < confidence < 1:
        raise EnsembleError(f"confidence must be a number strictly between 0 and 1; got {confidence!r}")
    given = hasattr(folds, "__len__") and not isinstance(folds, str)  # a fold per row (fold groups' training folds)
    for name, value, least in (("n_resamples", n_resamples, 1), *(() if given else (("folds", folds, 2),))):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < least:
            raise EnsembleError(f"{name} must be an integer >= {least}; got {value!r}")
    n = len(units)
    if given:
        fold = np.asarray(folds)
        if fold.shape != (n,) or len(np.unique(fold)) < 2:
            raise EnsembleError(f"folds must be K >= 2 or one fold number per row ({n}), of at least two folds")
        fold = np.unique(fold, return_inverse=True)[1]
        folds = int(fold.max()) + 1
    elif n < folds:
        raise EnsembleError(f"{n} labelled rows cannot be split in {folds} folds; give more rows, or folds >= 2")
    else:
        fold = np.random.default_rng(seed).permutation(n) % folds
    methods = list(dict.fromkeys(methods))
    counts = {m: np.zeros((n, 3), dtype=np.int64) for m in ["uniform", *methods]}
    held_spans = {m: [None] * n for m in counts}  # each row's spans from the rule fitted without its fold
    reference = np.zeros((n, 3), dtype=np.int64)
    for k in range(folds):
        held, fit = np.flatnonzero(fold == k), np.flatnonzero(fold != k)
        best = int(np.argmax([units.f(c[fit]) for c in units.member_counts]))
        reference[held] = units.member_counts[best][held]
        for m in counts:
            rule = fit_rule(units, m, fit, thresholds=thresholds)
            spans = units.decode(units.mean(rule.weights, held), held, rule.thresholds)
            counts[m][held] = units.counts(spans, held)
            for r, row in zip(held, spans):
                held_spans[m][r] = row
    draws = resampled_f({**counts, "\0reference": reference}, beta=units.beta, n_resamples=n_resamples, seed=seed + 1)
    tail = (1 - confidence) / 2
    ref_f = units.f(reference)
    uniform_f = units.f(counts["uniform"])
    out = {}
    every = np.arange(n)
    for m in methods:
        f = units.f(counts[m])
        d = draws[m] - draws["\0reference"]
        u = draws[m] - draws["uniform"]
        seen = _apparent(units, fit_rule(units, m, every, thresholds=thresholds)) if apparent else None
        out[m] = EntityEstimate(m, f, tuple(np.quantile(draws[m], [tail, 1 - tail]).tolist()), f - ref_f,
                                tuple(np.quantile(d, [tail, 1 - tail]).tolist()), f - uniform_f,
                                tuple(np.quantile(u, [tail, 1 - tail]).tolist()), seen, held_spans[m])
    return out


def _apparent(units: LabelledUnits, fit) -> float:
    """The rule ``fit`` (fitted on every row) scored on those same rows."""
    every = np.arange(len(units))
    return units.score(fit.weights, every, fit.thresholds)
