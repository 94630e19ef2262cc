"""Honest estimates for regression and multi-label ensembles: the whole fit (weights, stacker,
thresholds, clipping) refitted in each fold of the rows and scored only on the rows it did not
see, as :mod:`ensemble.tasks.classification.estimate` does for classification.

The gain over uniform (itself refitted per fold: its threshold is fitted too) gets a paired
bootstrap interval over rows. Every metric is a function of summed row statistics
(:class:`~ensemble.tasks.columns.base.Metric`), so a thousand resamples are one matrix product.
``auto`` keeps a fitted method only on a sure gain (:func:`~ensemble.estimates.resampling.sure_gain`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np

from ensemble.tasks.columns.fitting import VALUE_METHODS, ValueWeights, fit_value_weights
from ensemble.core.errors import EnsembleError
from ensemble.estimates.resampling import FoldPlan, check_cv, default_repeats, gain_words, interval_words, sure_gain
from ensemble.tasks.columns.fitting import column_task

__all__ = ["ValueEstimate", "value_holdout", "method_name", "cross_validate_values", "select_value_method", "value_plan", "bootstrap_counts",
           "metric_interval", "AUTO_VALUE_METHODS"]

AUTO_VALUE_METHODS = ("score", "optimize", "select", "stack")
N_RESAMPLES = 1000


@dataclass
class ValueEstimate:
    """One method's estimate.

    Attributes
    ----------
    method : str
    metric : str
        The metric the gain and interval are in.
    apparent, cross_validated : mapping of metric name to float
        Fitted and scored on every row; refitted per fold and scored out of fold (mean over rounds).
    gain : float
        Cross-validated ``metric`` gain over uniform, in the better direction (positive: better).
    gain_interval, interval : (float, float)
        The gain's paired bootstrap interval; the cross-validated metric's own.
    oof : ndarray (n, T)
        The first round's out-of-fold decisions (values, or 0/1).
    weights : ValueWeights
        The fit on every row.
    """

    method: str
    metric: str
    apparent: Mapping
    cross_validated: Mapping
    gain: float
    gain_interval: tuple
    interval: tuple
    oof: np.ndarray = field(repr=False)
    weights: ValueWeights = field(repr=False)
    oof_combined: np.ndarray | None = field(default=None, repr=False)

    greater: bool = True

    @property
    def optimism(self) -> float:
        """How much better the apparent score looks than the cross-validated one (positive:
        optimistic), in the metric's better direction."""
        d = self.apparent[self.metric] - self.cross_validated[self.metric]
        return d if self.greater else -d


def value_plan(cv, n: int, *, repeats: int | None = None, seed: int = 0) -> FoldPlan:
    """The folds: K of a repeated (unstratified) K-fold of ``n`` rows, or a fold number per row /
    a FoldPlan as given (:func:`~ensemble.estimates.resampling.check_cv`)."""
    cv = check_cv(cv)
    if isinstance(cv, (int, np.integer)):
        from sklearn.model_selection import RepeatedKFold

        k = int(min(cv, n))
        if k < 2:
            raise EnsembleError(f"cross-validation needs at least 2 rows; got {n}")
        r = default_repeats(n) if repeats is None else repeats
        splits = list(RepeatedKFold(n_splits=k, n_repeats=r, random_state=seed).split(np.zeros(n)))
        return FoldPlan(tuple(tuple(splits[i * k:(i + 1) * k]) for i in range(r)), "repeated")
    return check_cv(cv, np.zeros(n, dtype=np.int64))


def bootstrap_counts(n: int, n_resamples: int = N_RESAMPLES, seed: int = 0) -> np.ndarray:
    """Row counts of ``n_resamples`` bootstrap resamples of ``n`` rows, (B, n) float32."""
    rng = np.random.default_rng(seed)
    return rng.multinomial(n, np.full(n, 1.0 / n), size=n_resamples).astype(np.float32)


def metric_interval(metric, pred: np.ndarray, y: np.ndarray, counts: np.ndarray | None = None,
                    confidence: float = 0.95) -> tuple[float, float]:
    """The percentile bootstrap interval of ``metric`` (a Metric) of ``pred`` against ``y``."""
    stats = metric.stats(np.asarray(pred, dtype=np.float64), np.asarray(y, dtype=np.float64))
    counts = bootstrap_counts(len(y)) if counts is None else counts
    values = metric.resampled(stats.astype(np.float64), counts.astype(np.float64))
    a = (1 - confidence) / 2
    return float(np.quantile(values, a)), float(np.quantile(values, 1 - a))


def _oof(task, arrays, y, method, plan: FoldPlan, fit: Mapping) -> tuple[list[np.ndarray], np.ndarray]:
    """Each round's out-of-fold decisions, and the first round's combined outputs."""
    rounds, combined0 = [], None
    for r, pairs in enumerate(plan.rounds):
        out = np.empty_like(y)
        comb = np.empty_like(y)
        for train, test in pairs:
            w = fit_value_weights(task, [a[train] for a in arrays], y[train], method, **fit)
            part = [a[test] for a in arrays]
            comb[test] = w.combined(part)
            out[test] = w.decided(part, comb[test])
        rounds.append(out)
        if r == 0:
            combined0 = comb
    return rounds, combined0


def cross_validate_values(task: str, arrays: Sequence[np.ndarray], y: np.ndarray, methods: Sequence[str], *,
                          cv=5, repeats: int | None = None, seed: int = 0, metric: str | None = None,
                          n_resamples: int = N_RESAMPLES, **fit) -> dict[str, ValueEstimate]:
    """Every method of ``methods`` (and uniform) estimated on the same folds and resamples."""
    t = column_task(task)
    y = np.asarray(y, dtype=np.float64)
    arrays = [np.asarray(a, dtype=np.float64) for a in arrays]
    metric = metric or t.default_metric(y.shape[1])
    m = t.metric(metric)
    plan = value_plan(cv, len(y), repeats=repeats, seed=seed)
    counts = bootstrap_counts(len(y), n_resamples, seed).astype(np.float64)
    fit = {**fit, "metric": metric}
    out, base = {}, None
    for method in ("uniform", *[x for x in methods if x != "uniform"]):
        if method not in VALUE_METHODS:
            raise EnsembleError(f"unknown method {method!r}; choose among {', '.join(VALUE_METHODS)}")
        rounds, combined0 = _oof(task, arrays, y, method, plan, fit)
        stats = np.mean([m.stats(p, y) for p in rounds], axis=0)
        resampled = m.resampled(stats, counts)
        cvd = {name: float(np.mean([t.metric(name)(p, y) for p in rounds])) for name in t.metrics}
        full = fit_value_weights(task, arrays, y, method, **fit)
        if base is None:
            base = resampled
        sign = 1.0 if m.greater else -1.0
        d = sign * (resampled - base)
        gain = 0.0 if method == "uniform" else sign * (cvd[metric] - out["uniform"].cross_validated[metric])
        lo, hi = (0.0, 0.0) if method == "uniform" else (float(np.quantile(d, 0.025)), float(np.quantile(d, 0.975)))
        interval = (float(np.quantile(resampled, 0.025)), float(np.quantile(resampled, 0.975)))
        out[method] = ValueEstimate(method, metric, dict(full.apparent), cvd, gain, (lo, hi), interval, rounds[0],
                                    full, combined0, m.greater)
    return out


def select_value_method(estimates: Mapping[str, ValueEstimate]) -> tuple[str, str]:
    """auto's choice: the best cross-validated fitted method when its gain over uniform is sure,
    else uniform; and a one-line reason."""
    fitted = {k: e for k, e in estimates.items() if k != "uniform"}
    if not fitted:
        return "uniform", "only uniform was offered"
    any_e = next(iter(fitted.values()))
    metric = any_e.metric
    best = max(fitted, key=lambda k: fitted[k].gain)
    e = fitted[best]
    lo, hi = e.gain_interval
    if sure_gain((lo, hi)):
        return best, (f"{best}: cross-validated {metric} {e.cross_validated[metric]:.4f}, gain over uniform "
                      f"{e.gain:+.4f} [{lo:+.4f}, {hi:+.4f}] excludes zero")
    return "uniform", (f"uniform: the best fitted method, {best}, {gain_words(e.gain)} [{lo:+.4f}, {hi:+.4f}] in "
                       f"cross-validated {metric}, {interval_words(lo, hi)}")


def value_holdout(source, split, labels, estimates, metric: str) -> dict:
    """With fold groups and a validation split: every candidate fitted on the out-of-fold rows,
    scored on the holdout as submitted, and the choice by a sure paired-bootstrap gain over uniform
    there. With refits, each candidate is scored twice, on the fold means and with each refit in
    its group's place, and both are candidates under the one rule (``decided_on`` says which won,
    ``refits_gain`` what the refits did to the chosen method)."""
    from ensemble.estimates.resampling import sure_gain

    task = source.task
    variants = {"": source.aligned(split, labels, refit=False)}
    if source.refits:
        variants[" with refits"] = source.aligned(split, labels, refit=True)
    y = variants[""].y
    m = task.metric(metric)
    counts = bootstrap_counts(len(y)).astype(np.float64)
    sign = 1.0 if m.greater else -1.0
    uniform = estimates["uniform"].weights.decided(variants[""].arrays)
    base, base_score = m.resampled(m.stats(uniform, y), counts), m(uniform, y)
    scores, best, reason = {}, "uniform", "uniform: no fitted method gains surely over uniform on the holdout"
    for suffix, al in variants.items():
        for name, e in estimates.items():
            pred = e.weights.decided(al.arrays)
            res = m.resampled(m.stats(pred, y), counts)
            d = sign * (res - base)
            key = name + suffix
            gain, lo = sign * (m(pred, y) - base_score), float(np.quantile(d, 0.025))
            scores[key] = {"score": m(pred, y), "low": float(np.quantile(res, 0.025)),
                           "high": float(np.quantile(res, 0.975)), "gain": gain, "gain_low": lo,
                           "gain_high": float(np.quantile(d, 0.975))}
            if key != "uniform" and sure_gain((lo, 0)) and gain > scores.get(best, {}).get("gain", 0.0):
                best, reason = key, (f"{key}: on the holdout ({len(y)} rows) {metric} {scores[key]['score']:.4f}, "
                                     f"gain over uniform {gain:+.4f} excludes zero")
    from ensemble.estimates.holdout import holdout_touches

    choice = best.removesuffix(" with refits")
    out = {"path": str(split.path), "rows": len(y), "metric": metric, "scores": scores, "choice": choice,
           "reason": reason, "decided_on": "refits" if best.endswith(" with refits") else "fold means",
           **holdout_touches(source, split)}
    if source.refits:
        out["refits_gain"] = sign * (scores[choice + " with refits"]["score"] - scores[choice]["score"])
    return out


def method_name(spec: str) -> str:
    """The column tasks' name of a weight method: "score" for classification's "acc"."""
    return "score" if spec == "acc" else spec
