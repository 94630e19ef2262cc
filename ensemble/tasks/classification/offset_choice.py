"""Class-prior adjustment of the ensemble's probabilities, estimated honestly: the target prior
(:func:`class_prior`), the cross-validated estimate of each adjustment and ``--adjust auto``.
The adjustments themselves (fitted state and fitting) are :mod:`ensemble.tasks.classification.offsets`'s, and are
re-exported here.

Two ways to move the decision between classes after training, on the ensemble rather than in
the loss (inverse-frequency class weights, a focal-loss alpha):

* ``prior`` (logit adjustment under label shift): the ensemble's probabilities are taken to be
  calibrated to the validation rows (what the fitted methods, ``--temperature`` and
  ``--calibrate`` fit), so their class prior is the validation's. For a target prior pi_t (the
  training distribution, read from a labelled file, or given) Bayes' rule gives
  ``log p_t(c|x) = log p_v(c|x) + log pi_t(c) - log pi_v(c) + const``: the offsets are
  ``log pi_t - log pi_v``, nothing is fitted.
* ``fit``: per-class offsets chosen on the validation rows to maximise accuracy or macro-F1,
  by exact coordinate ascent (for one class's offset, the metric is a step function of it whose
  steps are where a row's prediction changes; every step is evaluated at once from cumulative
  sums). With a target prior, the rows are weighted by pi_t / pi_v and the start is the
  ``prior`` offsets.

Both are estimated on the folds of :mod:`ensemble.estimates.resampling` (repeated stratified K-fold by
default): the procedure (:mod:`ensemble.tasks.classification.procedure`: the weighting method, then the offsets) is
fitted on the other folds and the held-out fold is scored. When a
target prior is given, held-out rows are weighted by pi_t(y) / pi_v(y) (importance weighting
under label shift, which holds when p(x|y) is the same in both), so the scores are those
expected under the target prior. ``auto`` keeps an adjustment only when the lower end of the 95%
interval of its gain over no adjustment is above zero.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np

from ensemble.tasks.classification.offsets import Adjustment, check_adjust, empirical_prior, importance, needs_prior
from ensemble.core.combination import as_log_probs
from ensemble.core.errors import EnsembleError
from ensemble.core.options import ALLOWED
from ensemble.core.scores import recall_per_class, weighted_scores
from ensemble.tasks.classification.procedure import AdjustMethod, Procedure
from ensemble.estimates.resampling import (
    BOOTSTRAP_ROWS,
    FoldPlan,
    check_cv,
    cv_of,
    discordance_interval,
    gain_words,
    interval_words,
    normal_interval,
    score_difference_interval,
    sure_gain,
)
from ensemble.estimates.store import EstimateStore, data_digest, input_digest

__all__ = ['AdjustEstimate', 'estimate_adjustment', 'select_adjustment']

_METRICS = ALLOWED["adjust_metric"]


# --------------------------------------------------------------------------- honest estimate


@dataclass(frozen=True)
class AdjustEstimate:
    """One adjustment's cross-validated scores against no adjustment, on the same folds.

    ``scores`` and ``baseline`` are keyed by metric (accuracy, macro_f1), weighted to the target
    prior when one was given; ``gain`` = scores - baseline with its 95% ``interval``;
    ``recall`` and ``recall_before`` are the out-of-fold per-class recalls (C,).
    """

    kind: str
    scores: Mapping[str, float]
    baseline: Mapping[str, float]
    gain: Mapping[str, float]
    interval: Mapping[str, tuple[float, float]]
    recall: np.ndarray
    recall_before: np.ndarray
    adjustment: Adjustment = field(repr=False, default=None)


def _gain_interval(metric, pred_a, pred_b, y, C, w, confidence, n_resamples, seed) -> tuple[float, float]:
    from scipy.stats import bootstrap

    w = np.ones(len(y)) if w is None else w
    if metric == "accuracy":
        d = (pred_a == y).astype(float) - (pred_b == y).astype(float)
        if not d.any():
            return 0.0, 0.0

        def stat(d_, w_, axis=-1):
            return (d_ * w_).sum(axis=axis) / w_.sum(axis=axis)

        if len(d) <= BOOTSTRAP_ROWS:
            res = bootstrap((d, w), stat, paired=True, vectorized=True, confidence_level=confidence,
                            n_resamples=n_resamples, method="percentile", random_state=seed,
                            batch=max(1, 4_000_000 // len(d)))  # resamples in batches of ~32 MB
            low, high = float(res.confidence_interval.low), float(res.confidence_interval.high)
        else:  # the ratio mean's normal interval (delta method): the bootstrap's answer at this size
            low, high = normal_interval(d, confidence, w)
        # as for the weights (ensemble.estimate): widened to exact bounds on the (weighted) rates
        # of rows won and lost, because the bootstrap collapses when few rows change
        lo, hi = discordance_interval(d * w / w.mean(), confidence)
        return min(low, lo), max(high, hi)
    if np.array_equal(pred_a, pred_b):
        return 0.0, 0.0
    # not a mean over rows: every resample scored at once from per-class counts (linear in classes)
    resamples = int(min(n_resamples, 1000, max(200, 20_000_000 // len(y))))
    return score_difference_interval(metric, pred_a, pred_b, y, C, w=w, confidence=confidence,
                                     n_resamples=resamples, seed=seed)


def estimate_adjustment(
    valid_logits,
    y,
    method: str = "uniform",
    *,
    kinds: Sequence[str] = ("prior", "fit"),
    target: np.ndarray | None = None,
    metric: str = "accuracy",
    cv=None,
    repeats: int | None = None,
    seed: int = 0,
    confidence: float = 0.95,
    n_resamples: int = 2000,
    full_proba: np.ndarray | None = None,
    store: EstimateStore | None = None,
    folds: int | None = None,
    splits: FoldPlan | Sequence[int] | None = None,
    **fit_kwargs,
) -> dict[str, AdjustEstimate]:
    """Cross-validate each adjustment in ``kinds`` on top of the weighting ``method``.

    In each fold the weights and then the offsets are fitted on the other folds and the held-out
    rows are predicted with and without the offsets (:meth:`~ensemble.tasks.classification.procedure.Procedure.out_of_fold`).
    Scores pool the out-of-fold predictions (averaged over repeats), weighted by pi_t(y) / pi_v(y)
    when ``target`` is given.

    full_proba : array (n, C), optional
        The probabilities of ``method`` fitted on all rows, when the caller has them already
        (else it is fitted here); each estimate's ``adjustment`` is fitted on them.
    cv : int, sequence of int (n,) or FoldPlan, default 5
        How to resample, as for :func:`~ensemble.tasks.classification.estimate.cross_validate` (``folds`` and
        ``splits`` are its older spellings).
    store : EstimateStore, optional
        Read back an estimate stored before on the same inputs and options, or store this one
        (see :func:`~ensemble.tasks.classification.estimate.cross_validate`).

    Returns
    -------
    dict of kind -> AdjustEstimate
    """
    from ensemble.tasks.classification.weighting import aligned_inputs

    check_adjust("none", metric=metric)
    for kind in kinds:
        check_adjust(kind)
    kinds = [k for k in kinds if k != "none"]
    if "prior" in kinds and target is None:
        raise EnsembleError(needs_prior())
    arrays, names, labels, y = aligned_inputs(valid_logits, y)
    plan = check_cv(cv_of(cv, folds, splits), y, repeats=repeats, seed=seed)
    procedure = Procedure.of(method, seed=seed, **fit_kwargs)
    adjusts = [AdjustMethod(kind, target, metric) for kind in ["none", *kinds]]
    names = fit_kwargs.get("names") or names

    data = None if store is None else data_digest(arrays, y, plan)

    def compute() -> dict[str, AdjustEstimate]:
        return _estimate(arrays, y, labels, names, plan, procedure, adjusts, full_proba, confidence, n_resamples, seed,
                         store, data)

    if store is None:
        return compute()
    key = input_digest(data, {
        "estimate": "adjustment", "method": method, "names": list(names), "labels": list(labels),
        "options": procedure.weights.settings(), "kinds": list(kinds), "metric": metric,
        "target": None if target is None else np.asarray(target, dtype=np.float64).tolist(),
        "confidence": confidence, "n_resamples": n_resamples, "seed": seed})
    return store.cached(key, compute, _to_store, _from_store)


def _to_store(estimates: Mapping[str, AdjustEstimate]) -> tuple[dict, dict]:
    value, arrays = {}, {}
    for kind, e in estimates.items():
        value[kind] = {"scores": dict(e.scores), "baseline": dict(e.baseline), "gain": dict(e.gain),
                       "interval": {m: list(v) for m, v in e.interval.items()}, "adjustment": e.adjustment.to_dict()}
        arrays[f"{kind}.recall"], arrays[f"{kind}.recall_before"] = e.recall, e.recall_before
    return value, arrays


def _from_store(value: Mapping, arrays: Mapping) -> dict[str, AdjustEstimate]:
    return {kind: AdjustEstimate(kind, v["scores"], v["baseline"], v["gain"],
                                 {m: tuple(i) for m, i in v["interval"].items()}, arrays[f"{kind}.recall"],
                                 arrays[f"{kind}.recall_before"], Adjustment.from_dict(v["adjustment"]))
            for kind, v in value.items()}


def _estimate(arrays, y, labels, names, plan, procedure, adjusts, full_proba, confidence, n_resamples,
              seed, store=None, data=None) -> dict[str, AdjustEstimate]:
    """Each adjustment of ``adjusts[1:]`` against none (``adjusts[0]``), out of fold on ``plan``."""
    n, C = arrays[0].shape
    arrays = [as_log_probs(a) for a in arrays]  # computed once for the folds and the full fit
    kinds = [a.kind for a in adjusts[1:]]
    target = adjusts[0].target
    oof = procedure.out_of_fold(arrays, y, plan, adjustments=adjusts, store=store, data=data)
    base_preds, preds = oof[0].argmax(axis=2), {kind: o.argmax(axis=2) for kind, o in zip(kinds, oof[1:])}
    weights = importance(y, target, empirical_prior(y, C))
    rounds = plan.repeats

    def pooled(p):
        return {m: float(np.mean([weighted_scores(p[r], y, C, weights)[m] for r in range(rounds)])) for m in _METRICS}

    baseline = pooled(base_preds)
    recall_before = np.nanmean([recall_per_class(base_preds[r], y, C) for r in range(rounds)], axis=0)
    if full_proba is None:  # the method fitted on all rows, for each adjustment's full fit
        full_proba = procedure.weights.fit(arrays, y, names=names, stack_oof=False).apply(arrays)
    out = {}
    for kind, adjust in zip(kinds, adjusts[1:]):
        scores = pooled(preds[kind])
        gain = {m: scores[m] - baseline[m] for m in _METRICS}
        interval = {m: _gain_interval(m, preds[kind][0], base_preds[0], y, C, weights, confidence, n_resamples, seed)
                    for m in _METRICS}
        recall = np.nanmean([recall_per_class(preds[kind][r], y, C) for r in range(rounds)], axis=0)
        out[kind] = AdjustEstimate(kind, scores, baseline, gain, interval, recall, recall_before,
                                   adjust.fit(full_proba, y, labels=labels))
    return out


def select_adjustment(valid_logits, y, method: str = "uniform", *, target=None, metric: str = "accuracy",
                      kinds: Sequence[str] | None = None, **kwargs) -> tuple[str, str, dict[str, AdjustEstimate]]:
    """``--adjust auto``: the adjustment with the best cross-validated ``metric``, kept only when
    the lower end of its gain's interval over no adjustment is above zero; else "none".
    "prior" is a candidate only when a ``target`` prior is given."""
    kinds = tuple(kinds or (("prior", "fit") if target is not None else ("fit",)))
    estimates = estimate_adjustment(valid_logits, y, method, kinds=kinds, target=target, metric=metric, **kwargs)
    best = max(estimates, key=lambda k: estimates[k].scores[metric])
    e = estimates[best]
    lo, hi = e.interval[metric]
    under = " under the target prior" if target is not None else ""
    if sure_gain((lo, hi)):
        return best, (f"{best}: cross-validated {metric}{under} {e.scores[metric]:.4f} against {e.baseline[metric]:.4f} "
                      f"unadjusted, gain {e.gain[metric]:+.4f} [{lo:+.4f}, {hi:+.4f}] excludes zero"), estimates
    return "none", (f"none: the best adjustment, {best}, {gain_words(e.gain[metric])} [{lo:+.4f}, {hi:+.4f}] in "
                    f"cross-validated {metric}{under}, {interval_words(lo, hi)}"), estimates
