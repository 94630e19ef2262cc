"""How a weighting method will score on unseen data: repeated stratified K-fold over the
validation rows, with the whole fitting procedure inside each fold.

For each repeat, the rows are split into K stratified folds; the method (weights, temperatures,
selection, stacking: everything :func:`~ensemble.tasks.classification.weighting.fit_weights` fits) is fitted on K-1
folds and predicts the held-out one, so every row gets an out-of-fold prediction. Scores of the
pooled out-of-fold predictions, averaged over repeats, are the cross-validated estimate; the
same method fitted and scored on all rows is the apparent score; the difference is the optimism.

Against uniform averaging (which fits nothing), the gain is a paired comparison on the same
rows: its 95% interval comes from ``scipy.stats.bootstrap`` (paired, percentile) over the
rows; for accuracy it is widened to at least exact (Clopper-Pearson) bounds on the rates of
rows won and lost, because the bootstrap collapses when only a few rows differ (found by
``benchmarks/bench_honesty.py``: with equal members, intervals like [+0.001, +0.013] from three
rows missed a true gain of -0.0005). An exact McNemar test (``scipy.stats.binomtest`` on the discordant rows) gives a
p-value for the accuracy difference. ``select_method`` (``--weights auto``) keeps a fitted
method only when the lower end of that interval is above zero.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np

from ensemble.tasks.classification.weighting import aligned_inputs
from ensemble.tasks.classification.weights import Weights
from ensemble.core.combination import as_log_probs
from ensemble.core.combination import combine as combine_logits
from ensemble.core.errors import EnsembleError
from ensemble.core.scores import CLASS_METRICS
from ensemble.core.options import METHODS, is_method
from ensemble.tasks.classification.procedure import Procedure
from ensemble.estimates.resampling import (
    BOOTSTRAP_ROWS,
    FoldPlan,
    check_cv,
    cv_of,
    discordance_interval,
    gain_words,
    interval_words,
    metric_interval,
    normal_interval,
    score_difference_interval,
    sure_gain,
)
from ensemble.estimates.store import EstimateStore, data_digest, input_digest
from ensemble.tasks.classification.task import DEFAULT_METRICS, GREATER_IS_BETTER, ece, metric_value
from ensemble.tasks.classification.task import greater as _greater

__all__ = ['Estimate', 'cross_validate', 'select_method', 'estimate_interval', 'ece', 'metric_value', 'GREATER_IS_BETTER', 'DEFAULT_METRICS', 'AUTO_METHODS']

AUTO_METHODS = ("acc", "optimize", "select", "stack")
_EPS = 1e-15




def _row_losses(proba: np.ndarray, y: np.ndarray) -> np.ndarray:
    return -np.log(np.clip(proba[np.arange(len(y)), y], _EPS, None))








@dataclass(frozen=True)
class Estimate:
    """A weighting method's scores: apparent (fitted and scored on all validation rows) and
    cross-validated (out-of-fold), with the paired gain over uniform averaging.

    All dicts are keyed by metric name. ``optimism`` and ``gain_vs_uniform`` are signed so that
    positive means "looks better": apparent minus cross-validated (the reverse for losses), and
    the method's cross-validated score minus uniform's (the reverse for losses).
    """

    method: str
    apparent: Mapping[str, float]
    cross_validated: Mapping[str, float]
    optimism: Mapping[str, float]
    gain_vs_uniform: Mapping[str, float]
    gain_interval: Mapping[str, tuple[float, float]]
    mcnemar_p: float | None
    weights: Weights
    folds: int
    repeats: int
    oof_proba: np.ndarray = field(repr=False, default=None)

    def summary(self, metric: str = "accuracy") -> str:
        lo, hi = self.gain_interval[metric]
        return (f"{self.method}: {metric} apparent {self.apparent[metric]:.4f}, cross-validated "
                f"{self.cross_validated[metric]:.4f} (optimism {self.optimism[metric]:+.4f}); gain over uniform "
                f"{self.gain_vs_uniform[metric]:+.4f} [{lo:+.4f}, {hi:+.4f}]")


def _paired_interval(stat_rows_a: np.ndarray, stat_rows_b: np.ndarray, greater: bool, confidence: float,
                     n_resamples: int, seed: int) -> tuple[float, float]:
    """Percentile bootstrap interval of mean(a) - mean(b) over paired rows (sign flipped for
    losses so that positive is better)."""
    from scipy.stats import bootstrap

    diff = (stat_rows_a - stat_rows_b) * (1 if greater else -1)
    if np.allclose(diff, diff[0]):
        return float(diff[0]), float(diff[0])
    if len(diff) > BOOTSTRAP_ROWS:  # what the bootstrap converges to, without its resampling
        return normal_interval(diff, confidence)
    res = bootstrap((diff,), np.mean, confidence_level=confidence, n_resamples=n_resamples, method="percentile",
                    vectorized=True, random_state=seed)
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def _paired_interval_metric(name, proba_a, proba_b, y, confidence, n_resamples, seed) -> tuple[float, float]:
    """Bootstrap interval for a metric that is not a mean over rows (macro-F1, ROC AUC, kappa, ECE,
    scorers).

    Macro-F1, ROC AUC and kappa are scored on many resamples at once
    (:func:`~ensemble.core.scores.resampled_scores`, :func:`~ensemble.estimates.resampling.metric_interval`);
    other metrics one resample at a time."""
    from scipy.stats import bootstrap

    sign = 1 if _greater(name) else -1
    rows = np.arange(len(y))
    if name == "macro_f1":
        return score_difference_interval("macro_f1", proba_a.argmax(axis=1), proba_b.argmax(axis=1), y,
                                         proba_a.shape[1], classes="union", confidence=confidence,
                                         n_resamples=n_resamples, seed=seed)
    if name in ("roc_auc", "qwk"):
        return metric_interval(name, proba_a, y, against=proba_b, confidence=confidence, n_resamples=n_resamples,
                               seed=seed)

    def stat(idx):
        idx = idx.astype(int)
        return sign * (metric_value(name, proba_a[idx], y[idx]) - metric_value(name, proba_b[idx], y[idx]))

    res = bootstrap((rows,), stat, confidence_level=confidence, n_resamples=n_resamples, method="percentile",
                    vectorized=False, random_state=seed)
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def _mcnemar(correct_a: np.ndarray, correct_b: np.ndarray) -> float:
    """Exact (binomial) McNemar p-value of two classifiers' correctness on the same rows."""
    from scipy.stats import binomtest

    b = int(np.sum(correct_a & ~correct_b))
    c = int(np.sum(~correct_a & correct_b))
    return 1.0 if b + c == 0 else float(binomtest(b, b + c, 0.5).pvalue)


def cross_validate(
    valid_logits,
    y,
    method: str = "optimize",
    *,
    cv=None,
    repeats: int | None = None,
    seed: int = 0,
    metrics: Sequence[str] = DEFAULT_METRICS,
    confidence: float = 0.95,
    n_resamples: int = 2000,
    store: EstimateStore | None = None,
    folds: int | None = None,
    splits: FoldPlan | Sequence[int] | None = None,
    **fit_kwargs,
) -> Estimate:
    """Estimate a weighting method's score on unseen data by repeated stratified K-fold, or on
    the folds given.

    Parameters
    ----------
    valid_logits : list of Logits or of arrays of shape (n, C)
        The models' validation logits: Logits are aligned by class name and row id, arrays must
        be aligned already.
    y : array of int or of str, shape (n,), or Split
        True class indices, class names, or the labelled validation Split (see
        :func:`~ensemble.tasks.classification.weighting.fit_weights`).
    method : str, default "optimize"
        A method of :func:`~ensemble.tasks.classification.weighting.fit_weights`.
    cv : int, sequence of int (n,) or FoldPlan, default 5
        How to resample (:func:`~ensemble.estimates.resampling.check_cv`): K of the repeated
        stratified K-fold (capped at the size of the rarest class), a fold number per row (the
        folds K-fold models were trained on), or a
        :class:`~ensemble.estimates.resampling.FoldPlan`.
    repeats : int, optional
        Repeats of the K-fold split with other shuffles; scores are averaged over them. Default:
        2, and 1 above 10,000 rows (:func:`~ensemble.estimates.resampling.default_repeats`).
    seed : int, default 0
    metrics : sequence of str, default ("accuracy", "macro_f1", "log_loss")
        See :func:`metric_value`.
    confidence : float, default 0.95
        Level of the bootstrap interval of the gain over uniform.
    n_resamples : int, default 2000
    store : EstimateStore, optional
        Where estimates are stored (:mod:`ensemble.estimates.store`): one computed before on the
        same inputs and options is read back instead of computed again.
    folds, splits
        Older spellings of ``cv`` (an int K; folds given), read when ``cv`` is None.
    **fit_kwargs
        Passed to :func:`~ensemble.tasks.classification.weighting.fit_weights` (``combine``, ``temperature``...).

    Returns
    -------
    Estimate
    """
    if not is_method(method):
        raise EnsembleError(f"method must be one of {', '.join(METHODS)} or best<K>; got {method!r}")
    arrays, names, labels, y = aligned_inputs(valid_logits, y)
    names = fit_kwargs.pop("names", None) or names
    plan = check_cv(cv_of(cv, folds, splits), y, repeats=repeats, seed=seed)
    procedure = Procedure.of(method, seed=seed, **fit_kwargs)
    metrics = tuple(metrics)

    data = None if store is None else data_digest(arrays, y, plan)

    def compute() -> Estimate:
        return _cross_validate(arrays, y, names, plan, procedure, metrics, confidence, n_resamples, seed, store, data)

    if store is None:
        return compute()
    key = input_digest(data, {"estimate": "cross_validate", "method": method, "names": list(names),
                                         "options": procedure.weights.settings(), "metrics": list(metrics),
                                         "confidence": confidence, "n_resamples": n_resamples, "seed": seed})
    return store.cached(key, compute, _to_store, _from_store)


def _to_store(e: Estimate) -> tuple[dict, dict]:
    value = {"method": e.method, "apparent": dict(e.apparent), "cross_validated": dict(e.cross_validated),
             "optimism": dict(e.optimism), "gain_vs_uniform": dict(e.gain_vs_uniform),
             "gain_interval": {k: list(v) for k, v in e.gain_interval.items()}, "mcnemar_p": e.mcnemar_p,
             "weights": e.weights.to_dict(), "folds": e.folds, "repeats": e.repeats}
    return value, {"oof_proba": e.oof_proba}


def _from_store(value: Mapping, arrays: Mapping) -> Estimate:
    return Estimate(value["method"], value["apparent"], value["cross_validated"], value["optimism"],
                    value["gain_vs_uniform"], {k: tuple(v) for k, v in value["gain_interval"].items()},
                    value["mcnemar_p"], Weights.from_dict(value["weights"]), value["folds"], value["repeats"],
                    arrays["oof_proba"])


def _cross_validate(arrays, y, names, plan, procedure, metrics, confidence, n_resamples, seed, store=None,
                    data=None) -> Estimate:
    """The estimate itself: the procedure out of fold on ``plan``, on all rows, and uniform's scores."""
    method = procedure.weights.method
    arrays = [as_log_probs(a) for a in arrays]  # computed once for the folds, the full fit and uniform
    oofs = list(procedure.out_of_fold(arrays, y, plan, store=store, data=data)[0])
    full = procedure.fit(arrays, y, names=names, stack_oof=False)  # the estimate is its out-of-fold score
    full_proba = full.predict_proba(arrays)
    rule = procedure.weights.options.get("combine", "prob")
    if rule == "rank":  # ranks are of the rows combined together: uniform too, fold by fold, to compare alike
        uniforms = list(Procedure.of("uniform", combine="rank").out_of_fold(arrays, y, plan)[0])
    else:
        uniforms = [combine_logits(arrays, None, rule)]
    uniform = uniforms[0]

    apparent = {m: metric_value(m, full_proba, y) for m in metrics}
    cv = {m: float(np.mean([metric_value(m, o, y) for o in oofs])) for m in metrics}
    base = {m: float(np.mean([metric_value(m, u, y) for u in uniforms])) for m in metrics}
    optimism, gain, interval = {}, {}, {}
    for m in metrics:
        sign = 1 if _greater(m) else -1
        optimism[m] = sign * (apparent[m] - cv[m])
        gain[m] = sign * (cv[m] - base[m])
        if m == "accuracy":
            per_row = np.mean([o.argmax(axis=1) == y for o in oofs], axis=0)
            base_row = (uniform.argmax(axis=1) == y).astype(float)
            boot = _paired_interval(per_row, base_row, True, confidence, n_resamples, seed)
            exact = discordance_interval(per_row - base_row, confidence)
            interval[m] = (min(boot[0], exact[0]), max(boot[1], exact[1]))
        elif m == "log_loss":
            per_row = np.mean([_row_losses(o, y) for o in oofs], axis=0)
            interval[m] = _paired_interval(per_row, _row_losses(uniform, y), False, confidence, n_resamples, seed)
        else:
            interval[m] = _paired_interval_metric(m, oofs[0], uniform, y, confidence, min(n_resamples, 1000), seed)
    p = _mcnemar(oofs[0].argmax(axis=1) == y, uniform.argmax(axis=1) == y)
    return Estimate(method, apparent, cv, optimism, gain, interval, p, full, plan.k, plan.repeats, np.mean(oofs, axis=0))


def estimate_interval(metric: str, value: float, proba: np.ndarray, y: np.ndarray, *, confidence: float = 0.95,
                      seed: int = 0) -> tuple[float, float]:
    """The interval of a score ``value`` estimated on the rows ``y``: for accuracy, the Wilson
    interval of its rows; else the percentile bootstrap over the rows of ``metric`` on ``proba``
    (the out-of-fold predictions the estimate scored), moved by ``value`` minus their own score
    (an estimate averaged over repeats is not exactly the score of their mean)."""
    from ensemble.estimates.resampling import wilson

    if metric == "accuracy":
        return wilson(int(round(value * len(y))), len(y), confidence)
    low, high = metric_interval(metric, proba, y, confidence=confidence, seed=seed)
    shift = value - metric_value(metric, proba, y)
    return float(low + shift), float(high + shift)


def select_method(
    valid_logits,
    y,
    methods: Sequence[str] | None = None,
    *,
    metric: str = "accuracy",
    cv=None,
    repeats: int | None = None,
    seed: int = 0,
    folds: int | None = None,
    splits: FoldPlan | Sequence[int] | None = None,
    **fit_kwargs,
) -> tuple[str, str, dict[str, Estimate]]:
    """Choose a weighting method by cross-validated ``metric``, falling back to uniform.

    The method with the best cross-validated score is kept only when the lower end of the
    interval of its gain over uniform averaging is above zero; otherwise uniform is chosen.
    ``cv`` (or its older spellings ``folds``, ``splits``), ``repeats``, ``seed`` and
    ``**fit_kwargs`` are as for :func:`cross_validate`; the rule is
    :func:`~ensemble.estimates.resampling.sure_gain`.

    Returns
    -------
    (name, reason, estimates)
        The chosen method, a one-line reason, and every method's :class:`Estimate`.
    """
    methods = tuple(methods or AUTO_METHODS)
    unknown = [m for m in methods if not is_method(m)]
    if unknown:
        raise EnsembleError(f"unknown method {unknown[0]!r}; choose among {', '.join(METHODS)}")
    metrics = tuple(dict.fromkeys((metric, *DEFAULT_METRICS)))
    if metric in CLASS_METRICS:  # "acc" and "best" score the members by it too (a scorer's name: by accuracy)
        fit_kwargs.setdefault("member_metric", metric)
    cv = check_cv(cv_of(cv, folds, splits))  # checked once, before any method is fitted
    estimates = {m: cross_validate(valid_logits, y, m, cv=cv, repeats=repeats, seed=seed, metrics=metrics,
                                   **fit_kwargs) for m in methods if m != "uniform"}
    if not estimates:
        return "uniform", "only uniform was offered", estimates
    sign = 1 if _greater(metric) else -1
    best = max(estimates, key=lambda m: sign * estimates[m].cross_validated[metric])
    e = estimates[best]
    lo, hi = e.gain_interval[metric]
    if sure_gain((lo, hi)):
        reason = (f"{best}: cross-validated {metric} {e.cross_validated[metric]:.4f}, gain over uniform "
                  f"{e.gain_vs_uniform[metric]:+.4f} [{lo:+.4f}, {hi:+.4f}] excludes zero")
        return best, reason, estimates
    reason = (f"uniform: the best fitted method, {best}, {gain_words(e.gain_vs_uniform[metric])} "
              f"[{lo:+.4f}, {hi:+.4f}] in cross-validated {metric}, {interval_words(lo, hi)}")
    return "uniform", reason, estimates
