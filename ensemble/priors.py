"""Class-prior adjustment of the ensemble's probabilities, estimated honestly: the target prior
(:func:`class_prior`), the cross-validated estimate of each adjustment and ``--adjust auto``.
The adjustments themselves (fitted state and fitting) are :mod:`ensemble.adjustment`'s, and are
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

Both are estimated on the folds of :mod:`ensemble.resampling` (repeated stratified K-fold by
default): the procedure (:mod:`ensemble.procedure`: the weighting method, then the offsets) is
fitted on the other folds and the held-out fold is scored. When a
target prior is given, held-out rows are weighted by pi_t(y) / pi_v(y) (importance weighting
under label shift, which holds when p(x|y) is the same in both), so the scores are those
expected under the target prior. ``auto`` keeps an adjustment only when the lower end of the 95%
interval of its gain over no adjustment is above zero.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from .adjustment import (ADJUSTMENTS, needs_prior, Adjustment, check_adjust, empirical_prior, fit_adjustment,  # noqa: F401
                         fit_offsets, importance)
from .combination import as_log_probs
from .errors import EnsembleError
from .estimate_store import EstimateStore, data_digest, input_digest
from .procedure import AdjustMethod, Procedure
from .resampling import (BOOTSTRAP_ROWS, FoldPlan, discordance_interval, fold_plan, gain_words, interval_words,
                         normal_interval, score_difference_interval)
from .scores import recall_per_class, weighted_scores

__all__ = ["ADJUSTMENTS", "Adjustment", "AdjustEstimate", "class_prior", "fit_adjustment", "fit_offsets",
           "estimate_adjustment", "select_adjustment"]

_METRICS = ("accuracy", "macro_f1")


# --------------------------------------------------------------------------- priors


def class_prior(spec, labels: Sequence[str], *, columns: Mapping | None = None) -> np.ndarray:
    """A class prior in the order of ``labels``, shape (C,), summing to 1.

    Parameters
    ----------
    spec : str, path, mapping, sequence or Split
        "uniform"; ``"neg=0.6,pos=0.4"`` (shares by class name, normalised); a mapping of class
        name to share; a sequence of C shares in ``labels`` order; or a labelled data file (or
        :class:`~ensemble.data.Split`), e.g. the training file: its label frequencies.
    labels : sequence of str
        The class names.
    columns : mapping, optional
        ``id``, ``text``, ``label``, ``encoding`` for reading a data file.
    """
    from .data import Split, load_split

    C = len(labels)
    where = "--prior"
    if isinstance(spec, (str, os.PathLike)) and _is_file_spec(spec) and not Path(spec).is_file():
        raise EnsembleError(f"{where} {os.fspath(spec)}: no such file; pass a labelled data file (the training file), "
                            f"'uniform', or shares like {labels[0]}=0.5,...")
    if isinstance(spec, Split) or (isinstance(spec, (str, os.PathLike)) and _is_file_spec(spec)):
        split = spec if isinstance(spec, Split) else load_split(
            spec, **{k: v for k, v in dict(columns or {}).items() if k != "label_if_present"}, require_label=True)
        y = split.label_indices(labels, model="the ensemble")
        counts = np.bincount(y, minlength=C).astype(float)
        missing = [labels[c] for c in range(C) if counts[c] == 0]
        if missing:
            raise EnsembleError(f"{split.path}: class {missing[0]!r} never occurs, so its prior would be 0; "
                                "pass a file where every class occurs, or give the shares (--prior a=0.5,b=0.5)")
        return counts / counts.sum()
    if isinstance(spec, str):
        if spec == "uniform":
            return np.full(C, 1.0 / C)
        pairs = {}
        for part in spec.split(","):
            name, sep, value = part.partition("=")
            if not sep:
                raise EnsembleError(f"{where} {spec!r}: expected 'uniform', a labelled data file, or shares like "
                                    f"{labels[0]}=0.5,...; {part!r} is none of these")
            pairs[name.strip()] = value.strip()
        spec = pairs
    if isinstance(spec, Mapping):
        unknown = [k for k in spec if k not in labels]
        if unknown:
            raise EnsembleError(f"{where}: class {unknown[0]!r} is not one of the models' classes ({', '.join(labels)})")
        missing = [c for c in labels if c not in spec]
        if missing:
            raise EnsembleError(f"{where}: no share for class {missing[0]!r}; give one for each of {', '.join(labels)}")
        spec = [spec[c] for c in labels]
    try:
        shares = np.asarray([float(v) for v in spec], dtype=np.float64)
    except (TypeError, ValueError):
        raise EnsembleError(f"{where}: shares must be numbers, got {spec!r}") from None
    if shares.shape != (C,):
        raise EnsembleError(f"{where}: got {len(shares)} shares for {C} classes ({', '.join(labels)})")
    if not np.all(np.isfinite(shares)) or np.any(shares <= 0):
        raise EnsembleError(f"{where}: every share must be a positive number, got {shares.tolist()}")
    return shares / shares.sum()


def _is_file_spec(spec) -> bool:
    s = os.fspath(spec)
    return s != "uniform" and "=" not in s


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
    folds: int = 5,
    repeats: int | None = None,
    seed: int = 0,
    confidence: float = 0.95,
    n_resamples: int = 2000,
    full_proba: np.ndarray | None = None,
    splits: FoldPlan | Sequence[int] | None = None,
    store: EstimateStore | None = None,
    **fit_kwargs,
) -> dict[str, AdjustEstimate]:
    """Cross-validate each adjustment in ``kinds`` on top of the weighting ``method``.

    In each fold the weights and then the offsets are fitted on the other folds and the held-out
    rows are predicted with and without the offsets (:meth:`~ensemble.procedure.Procedure.out_of_fold`).
    Scores pool the out-of-fold predictions (averaged over repeats), weighted by pi_t(y) / pi_v(y)
    when ``target`` is given.

    full_proba : array (n, C), optional
        The probabilities of ``method`` fitted on all rows, when the caller has them already
        (else it is fitted here); each estimate's ``adjustment`` is fitted on them.
    splits : FoldPlan or array of int (n,), optional
        The folds to cross-validate on instead of ``repeats`` x ``folds`` repeated stratified
        ones (see :func:`~ensemble.estimate.cross_validate`).
    store : EstimateStore, optional
        Read back an estimate stored before on the same inputs and options, or store this one
        (see :func:`~ensemble.estimate.cross_validate`).

    Returns
    -------
    dict of kind -> AdjustEstimate
    """
    from .weighting import aligned_inputs

    check_adjust("none", metric=metric)
    for kind in kinds:
        check_adjust(kind)
    kinds = [k for k in kinds if k != "none"]
    if "prior" in kinds and target is None:
        raise EnsembleError(needs_prior())
    arrays, names, labels, y = aligned_inputs(valid_logits, y)
    plan = fold_plan(splits, y, folds, repeats, seed)
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
    if lo > 0:
        return best, (f"{best}: cross-validated {metric}{under} {e.scores[metric]:.4f} against {e.baseline[metric]:.4f} "
                      f"unadjusted, gain {e.gain[metric]:+.4f} [{lo:+.4f}, {hi:+.4f}] excludes zero"), estimates
    return "none", (f"none: the best adjustment, {best}, {gain_words(e.gain[metric])} [{lo:+.4f}, {hi:+.4f}] in "
                    f"cross-validated {metric}{under}, {interval_words(lo, hi)}"), estimates


def prior_from_project(value: str, root: Path) -> str | Path:
    """A project file's ``prior``: "uniform" and shares as given, a file path relative to the file."""
    if not _is_file_spec(value):
        return value
    p = Path(value)
    return p if p.is_absolute() else root / p
