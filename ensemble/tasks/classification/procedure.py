"""The procedure: what is fitted on labelled rows and what the honest estimates cross-validate.

A procedure is a weighting method (with its temperatures and calibration) followed by a
class-prior adjustment. Each step is a method behind one small interface:

* ``fit(X, y, ...)`` on aligned arrays and the true class indices returns fitted state;
* the fitted state's ``apply(X)`` returns probabilities (n, C).

:class:`WeightMethod` fits :class:`~ensemble.tasks.classification.weights.Weights` on the members' logits;
:class:`AdjustMethod` fits an :class:`~ensemble.tasks.classification.offsets.Adjustment` on the ensemble's
probabilities. :class:`Procedure` chains them, and :meth:`Procedure.out_of_fold` runs the whole
chain inside each fold of a :class:`~ensemble.estimates.resampling.FoldPlan` it is given (repeated
stratified folds of the validation rows today; the training folds of K-fold models as well),
which is all that :mod:`ensemble.tasks.classification.estimate` and :mod:`ensemble.tasks.classification.offset_choice` need to score it.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Mapping, Protocol, Sequence

import numpy as np

from ensemble.tasks.classification.offsets import Adjustment, check_adjust, fit_adjustment
from ensemble.tasks.classification.weighting import fit_weights
from ensemble.tasks.classification.weights import Weights
from ensemble.core.combination import as_log_probs
from ensemble.core.progress import bar
from ensemble.estimates.resampling import FoldPlan
from ensemble.estimates.store import EstimateStore, input_digest

__all__ = ['Fitted', 'Method', 'WeightMethod', 'AdjustMethod', 'Procedure', 'fold_workers']


class Fitted(Protocol):
    """Fitted state: turns aligned inputs into probabilities (n, C)."""

    def apply(self, X) -> np.ndarray: ...


class Method(Protocol):
    """A method: fitted on aligned inputs and true class indices."""

    def fit(self, X, y: np.ndarray, **context) -> Fitted: ...


@dataclass(frozen=True)
class WeightMethod:
    """A weighting method of :func:`~ensemble.tasks.classification.weighting.fit_weights` and its options
    (``combine``, ``temperature``, ``calibrate``, ``acc_power``, ``seed``...), as one value."""

    method: str = "uniform"
    options: Mapping = field(default_factory=dict)

    def settings(self) -> dict:
        """Every option, :func:`~ensemble.tasks.classification.weighting.fit_weights`' defaults filled in: two
        methods with the same settings fit the same weights (an estimate's key holds them)."""
        import inspect

        skip = ("valid_logits", "y", "method", "names", "stack_oof", "score")
        defaults = {k: p.default for k, p in inspect.signature(fit_weights).parameters.items()
                    if k not in skip and p.default is not inspect.Parameter.empty}
        return {**defaults, **self.options}

    def fit(self, arrays: Sequence[np.ndarray], y: np.ndarray, *, names: Sequence[str] | None = None,
            stack_oof: bool = True, score: bool = True) -> Weights:
        """Weights fitted on ``arrays`` (M aligned arrays n x C) and ``y``; ``stack_oof=False``
        skips the stacker's own out-of-fold scores and ``score=False`` the apparent scores
        (inside an estimate, which scores the whole procedure out of fold itself)."""
        return fit_weights(arrays, y, self.method, names=names, stack_oof=stack_oof, score=score, **self.options)


@dataclass(frozen=True)
class AdjustMethod:
    """A class-prior adjustment (:func:`~ensemble.tasks.classification.offsets.fit_adjustment`): its kind, the
    target prior (C,) when one is given, and the metric "fit" maximises."""

    kind: str = "none"
    target: np.ndarray | None = None
    metric: str = "accuracy"

    def __post_init__(self):
        check_adjust(self.kind, metric=self.metric)

    def fit(self, proba: np.ndarray, y: np.ndarray, *, labels: Sequence[str] = ()) -> Adjustment:
        return fit_adjustment(proba, y, self.kind, target=self.target, metric=self.metric, labels=labels)


@dataclass(frozen=True)
class Procedure:
    """A weighting method followed by a class-prior adjustment: the thing that is fitted on
    labelled rows, and that an estimate cross-validates as a whole.

    Parameters
    ----------
    weights : WeightMethod
    adjust : AdjustMethod, default none
    """

    weights: WeightMethod = field(default_factory=WeightMethod)
    adjust: AdjustMethod = field(default_factory=AdjustMethod)

    @classmethod
    def of(cls, method: str = "uniform", *, adjust: str = "none", target: np.ndarray | None = None,
           adjust_metric: str = "accuracy", **options) -> Procedure:
        """``Procedure.of("optimize", temperature=True, adjust="fit")``: the fit_weights options
        by keyword, as :func:`~ensemble.tasks.classification.weighting.fit_weights` takes them."""
        options.pop("names", None)
        return cls(WeightMethod(method, options), AdjustMethod(adjust, target, adjust_metric))

    def vote_options(self, adjust: str, prior) -> dict:
        """What this procedure sets when a vote is given it as ``weights``: its method and options,
        and its adjustment (its target prior, when it has one); ``adjust`` and ``prior`` are the
        vote's own, which must not contradict it."""
        from ensemble.core.errors import EnsembleError

        options = dict(self.weights.options)
        # member_metric is the vote's own metric: given there (metric=), never by the procedure
        unknown = sorted(set(options) - {"combine", "temperature", "calibrate", "acc_power", "seed"})
        if unknown:
            raise EnsembleError(f"the procedure's option {unknown[0]!r} is not one vote takes (combine, temperature, "
                                "calibrate, acc_power, seed)")
        if adjust != "none" and adjust != self.adjust.kind:
            raise EnsembleError(f"adjust={adjust!r} and a procedure whose adjustment is {self.adjust.kind!r}; give one")
        target = self.adjust.target
        return {"weights": self.weights.method, "adjust": self.adjust.kind, "adjust_metric": self.adjust.metric,
                "prior": prior if target is None else [float(v) for v in target], **options}

    def fit(self, arrays: Sequence[np.ndarray], y: np.ndarray, *, names: Sequence[str] | None = None,
            labels: Sequence[str] = (), stack_oof: bool = True) -> Weights:
        """The Weights fitted on all the rows given, carrying the adjustment fitted after them."""
        fitted = self.weights.fit(arrays, y, names=names, stack_oof=stack_oof)
        return self.adjusted(fitted, arrays, y, labels=labels or fitted.labels)

    def adjusted(self, fitted: Weights, arrays: Sequence[np.ndarray], y: np.ndarray, *,
                 labels: Sequence[str] = ()) -> Weights:
        """``fitted`` (any Weights, fixed by hand included) with this procedure's adjustment
        fitted on its probabilities over ``arrays``."""
        if self.adjust.kind == "none":
            return fitted
        adj = self.adjust.fit(fitted.apply(arrays), y, labels=labels)
        return replace(fitted, adjustment=adj.to_dict())

    def out_of_fold(self, arrays: Sequence[np.ndarray], y: np.ndarray, plan: FoldPlan, *,
                    adjustments: Sequence[AdjustMethod] | None = None, store: EstimateStore | None = None,
                    data: str | None = None) -> list[np.ndarray]:
        """Out-of-fold probabilities of the whole procedure: in each fold of ``plan`` the weights,
        then the adjustment, are fitted on the training rows and the held-out rows are predicted.

        Parameters
        ----------
        arrays : sequence of M arrays (n, C), aligned
        y : array of int (n,)
        plan : FoldPlan
        adjustments : sequence of AdjustMethod, optional
            Score these adjustments instead of this procedure's own, each on the same fitted
            weights of each fold (so that their differences are paired).
        store, data : EstimateStore and the inputs' :func:`~ensemble.estimates.store.data_digest`, optional
            Where the weights fitted in each fold are kept: an estimate of the same weighting
            method on the same rows and folds (the adjustments' after the weights') reads them
            back instead of fitting them again.

        Returns
        -------
        list of arrays (repeats, n, C)
            One per adjustment (this procedure's own when ``adjustments`` is None).
        """
        adjustments = [self.adjust] if adjustments is None else list(adjustments)
        arrays = [as_log_probs(a) for a in arrays]  # once, not in every fold
        n, C = arrays[0].shape
        out = [np.empty((plan.repeats, n, C)) for _ in adjustments]
        what = "+".join([self.weights.method, *(a.kind for a in adjustments if a.kind != "none")])
        key = None if store is None or data is None else input_digest(
            data, {"fold_weights": self.weights.method, "options": self.weights.settings()})
        fitted = _stored_fits(store, key, plan)
        with bar(plan.repeats * plan.k, f"cross-validating {what}") as progress:
            fits = self._folds(arrays, y, plan, adjustments, out, progress, fitted)
        if key is not None and fitted is None:
            try:
                store.put(key, {"folds": [w.to_dict() for w in fits]}, {})
            except OSError:
                pass  # only a shortcut: the next estimate fits them again
        return out

    def _folds(self, arrays, y, plan: FoldPlan, adjustments, out, progress, fitted=None) -> list[Weights]:
        """Every fold of every round, in parallel threads (numpy releases the GIL in the passes
        that cost; each fold writes its own held-out rows, so the result is that of a loop).
        ``fitted``: the weights of each fold, fitted before. Returns the weights of each fold."""
        def one(i, job):
            r, (train, test) = job
            w = fitted[i] if fitted is not None else self.weights.fit([a[train] for a in arrays], y[train],
                                                                        stack_oof=False, score=False)
            p_test = w.apply([a[test] for a in arrays])
            p_train = None
            for j, adjust in enumerate(adjustments):
                if adjust.kind == "none":
                    out[j][r, test] = p_test
                    continue
                if p_train is None:
                    p_train = w.apply([a[train] for a in arrays])
                out[j][r, test] = adjust.fit(p_train, y[train]).apply(p_test)
            return w

        jobs = [(r, pair) for r, pairs in enumerate(plan.rounds) for pair in pairs]
        workers = min(len(jobs), fold_workers())
        if workers <= 1:
            fits = []
            for i, job in enumerate(jobs):
                fits.append(one(i, job))
                progress.update()
            return fits
        from concurrent.futures import ThreadPoolExecutor

        fits = []
        with ThreadPoolExecutor(workers, thread_name_prefix="ensemble-fold") as pool:
            for w in pool.map(one, range(len(jobs)), jobs):
                fits.append(w)
                progress.update()
        return fits


def _stored_fits(store, key, plan: FoldPlan) -> list[Weights] | None:
    """The weights of each fold stored under ``key``, or None (absent, or damaged: then they are
    fitted again)."""
    if key is None:
        return None
    hit = store.get(key)
    if hit is None:
        return None
    try:
        fits = [Weights.from_dict(d) for d in hit[0]["folds"]]
    except (KeyError, TypeError, ValueError):
        return None
    return fits if len(fits) == plan.repeats * plan.k else None


def fold_workers() -> int:
    """Threads for the folds: the CPUs this process may use (``ENSEMBLE_FOLD_WORKERS`` overrides,
    1 for a plain loop), at most 8."""
    import os

    value = os.environ.get("ENSEMBLE_FOLD_WORKERS", "").strip()
    if value:
        if not value.isdigit() or int(value) < 1:
            from ensemble.core.errors import EnsembleError

            raise EnsembleError(f"ENSEMBLE_FOLD_WORKERS must be a whole number of threads, 1 or more; got {value!r}")
        return int(value)
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(cpus, 8))
