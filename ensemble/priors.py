"""Class-prior adjustment of the ensemble's probabilities, estimated honestly.

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

Both are estimated by the repeated stratified K-fold of :mod:`ensemble.estimate`: the weighting
method and the offsets are fitted on the other folds and the held-out fold is scored. When a
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

from .adjustment import ADJUSTMENTS, Adjustment
from .errors import EnsembleError

__all__ = ["ADJUSTMENTS", "Adjustment", "AdjustEstimate", "class_prior", "fit_adjustment", "fit_offsets",
           "estimate_adjustment", "select_adjustment"]

NEEDS_PRIOR = ("--adjust prior needs a target prior: --prior with the training data file, 'uniform', or shares "
               "like a=0.7,b=0.3")
_EPS = 1e-15
_METRICS = ("accuracy", "macro_f1")
# Up to this many rows the gain interval is a paired percentile bootstrap; above, where the
# bootstrap's resampling alone takes tens of seconds, the normal interval it converges to.
_BOOTSTRAP_ROWS = 20_000


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


def empirical_prior(y: np.ndarray, C: int) -> np.ndarray:
    """Class frequencies of ``y``; a class absent from ``y`` gets half a row (no log of 0)."""
    counts = np.bincount(y, minlength=C).astype(float)
    counts[counts == 0] = 0.5
    return counts / counts.sum()


# --------------------------------------------------------------------------- metrics


def _weighted_scores(pred: np.ndarray, y: np.ndarray, C: int, w: np.ndarray | None) -> dict[str, float]:
    conf = np.bincount(y * C + pred, weights=w, minlength=C * C).reshape(C, C).astype(np.float64)
    tp = np.diag(conf)
    support, predicted = conf.sum(axis=1), conf.sum(axis=0)
    denom = support + predicted
    f1 = np.where(denom > 0, 2 * tp / np.where(denom > 0, denom, 1), 0.0)
    present = support > 0
    return {"accuracy": float(tp.sum() / conf.sum()), "macro_f1": float(f1[present].mean())}


def recall_per_class(pred: np.ndarray, y: np.ndarray, C: int) -> np.ndarray:
    """Recall of each class (NaN for a class with no rows): unaffected by the class prior."""
    out = np.full(C, np.nan)
    for c in range(C):
        mask = y == c
        if mask.any():
            out[c] = float(np.mean(pred[mask] == c))
    return out


# --------------------------------------------------------------------------- fitting


def _log(proba: np.ndarray) -> np.ndarray:
    return np.log(np.clip(proba, _EPS, None))


def fit_offsets(proba: np.ndarray, y: np.ndarray, metric: str = "accuracy", *, sample_weight=None,
                start: np.ndarray | None = None, rounds: int = 10) -> np.ndarray:
    """Per-class offsets added to ``log(proba)`` that maximise ``metric`` on (``proba``, ``y``).

    Exact coordinate ascent: for class c with the other offsets fixed, row i is predicted c
    exactly when its offset exceeds ``t_i = max_{j != c}(s_ij + b_j) - s_ic``, so the metric is a
    step function of b_c with steps at the sorted ``t_i``; all steps are scored at once from
    cumulative sums, and b_c moves to the middle of the best step (of the best steps, the one
    nearest its current value). Passes repeat until none improves. Offsets have mean zero.

    Parameters
    ----------
    proba : array (n, C)
    y : array of int (n,)
    metric : {"accuracy", "macro_f1"}, default "accuracy"
    sample_weight : array (n,), optional
        Row weights (e.g. pi_t(y) / pi_v(y) for a target prior).
    start : array (C,), optional
        Initial offsets (default zeros).
    """
    if metric not in _METRICS:
        raise EnsembleError(f"the offsets are fitted for accuracy or macro_f1; got {metric!r}")
    s = _log(np.asarray(proba, dtype=np.float64))
    y = np.asarray(y)
    n, C = s.shape
    w = np.ones(n) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
    b = np.zeros(C) if start is None else np.asarray(start, dtype=np.float64).copy()
    onehot_y = np.zeros((n, C))
    onehot_y[np.arange(n), y] = w
    support = onehot_y.sum(axis=0)
    best_score = _weighted_scores((s + b).argmax(axis=1), y, C, w)[metric]
    for _ in range(rounds):
        improved = False
        for c in range(C):
            z = s + b
            z[:, c] = -np.inf
            alt = z.argmax(axis=1)                       # the prediction when c is not chosen
            t = z[np.arange(n), alt] - s[:, c]            # c is predicted when b_c > t
            order = np.argsort(t, kind="stable")
            ts, alt_s, y_s, w_s = t[order], alt[order], y[order], w[order]
            # cut k: the k rows with the smallest t predict c, the rest predict alt
            is_c = (y_s == c) * w_s
            if metric == "accuracy":
                prefix = np.concatenate([[0.0], np.cumsum(is_c)])
                hit_alt = (alt_s == y_s) * w_s
                suffix = np.concatenate([np.cumsum(hit_alt[::-1])[::-1], [0.0]])
                score = (prefix + suffix) / w.sum()
            else:
                A = np.zeros((n, C))
                A[np.arange(n), alt_s] = w_s                  # predicted alt, by class
                T = A * (alt_s == y_s)[:, None]                # ... and right
                suf_pred = np.vstack([np.cumsum(A[::-1], axis=0)[::-1], np.zeros((1, C))])
                suf_tp = np.vstack([np.cumsum(T[::-1], axis=0)[::-1], np.zeros((1, C))])
                pre_w = np.concatenate([[0.0], np.cumsum(w_s)])
                pre_tp = np.concatenate([[0.0], np.cumsum(is_c)])
                pred_cnt = suf_pred.copy()
                pred_cnt[:, c] += pre_w
                tp = suf_tp.copy()
                tp[:, c] += pre_tp
                denom = support[None, :] + pred_cnt
                f1 = np.where(denom > 0, 2 * tp / np.where(denom > 0, denom, 1), 0.0)
                score = f1[:, support > 0].mean(axis=1)
            # candidate offsets: below every t, between consecutive t's, above every t
            mids = np.concatenate([[ts[0] - 1.0], (ts[:-1] + ts[1:]) / 2, [ts[-1] + 1.0]]) if n else np.zeros(1)
            top = score.max()
            if top <= best_score + 1e-12:
                continue
            ties = np.flatnonzero(score >= top - 1e-12)
            previous = b[c]
            b[c] = mids[ties[np.argmin(np.abs(mids[ties] - b[c]))]]
            # scored as predicted, so that rows with equal t (no cut between them) cannot mislead
            actual = _weighted_scores((s + b).argmax(axis=1), y, C, w)[metric]
            if actual <= best_score + 1e-12:
                b[c] = previous
                continue
            best_score, improved = actual, True
        if not improved:
            break
    return b - b.mean()


def check_adjust(kind: str, *, metric: str = "accuracy", auto: bool = False) -> None:
    """An adjustment kind (and "auto" when allowed) and a metric it can be fitted for, or a
    one-line error."""
    if kind not in ADJUSTMENTS + (("auto",) if auto else ()):
        raise EnsembleError(f"--adjust must be one of {', '.join(ADJUSTMENTS)} or auto; got {kind!r}")
    if metric not in _METRICS:
        raise EnsembleError(f"--adjust-metric must be accuracy or macro_f1; got {metric!r}")


def _importance(y: np.ndarray, target: np.ndarray | None, source: np.ndarray) -> np.ndarray | None:
    return None if target is None else (target / source)[y]


def fit_adjustment(proba: np.ndarray, y: np.ndarray, kind: str = "prior", *, target: np.ndarray | None = None,
                   metric: str = "accuracy", labels: Sequence[str] = ()) -> Adjustment:
    """Fit a class-prior adjustment of the ensemble probabilities ``proba`` on validation.

    Parameters
    ----------
    proba : array (n, C)
        The ensemble's validation probabilities.
    y : array of int (n,)
    kind : {"none", "prior", "fit"}, default "prior"
        "prior" needs ``target``; "fit" uses it, when given, to weight rows and to start from.
    target : array (C,), optional
        The target class prior (see :func:`class_prior`).
    metric : {"accuracy", "macro_f1"}, default "accuracy"
        What "fit" maximises.
    """
    check_adjust(kind)
    y = np.asarray(y)
    C = proba.shape[1]
    source = empirical_prior(y, C)
    if kind == "none":
        return Adjustment("none", np.zeros(C), tuple(labels))
    from .weighting import need_classes

    need_classes(y, f"--adjust {kind}", labels)
    # a class with no validation row has no prior to divide by and no row to fit on: it is left
    # alone (offset 0), where log(target / half a row) would send every row to it
    absent = np.bincount(y, minlength=C) == 0
    if kind == "prior":
        if target is None:
            raise EnsembleError(NEEDS_PRIOR)
        off = np.where(absent, 0.0, np.log(target) - np.log(source))
        off[~absent] -= off[~absent].mean()
        return Adjustment("prior", off, tuple(labels), target, source)
    start = None if target is None else np.where(absent, 0.0, np.log(target) - np.log(source))
    off = fit_offsets(proba, y, metric, sample_weight=_importance(y, target, source), start=start)
    off[absent] = 0.0
    return Adjustment("fit", off, tuple(labels), target, source if target is not None else None, metric)


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

        if len(d) <= _BOOTSTRAP_ROWS:
            res = bootstrap((d, w), stat, paired=True, vectorized=True, confidence_level=confidence,
                            n_resamples=n_resamples, method="percentile", random_state=seed,
                            batch=max(1, 4_000_000 // len(d)))  # resamples in batches of ~32 MB
            low, high = float(res.confidence_interval.low), float(res.confidence_interval.high)
        else:  # the ratio mean's normal interval (delta method): the bootstrap's answer at this size
            from scipy.stats import norm

            g = stat(d, w)
            se = float(np.sqrt(np.sum((w * (d - g)) ** 2)) / w.sum())
            z = float(norm.ppf(0.5 + confidence / 2))
            low, high = g - z * se, g + z * se
        # as for the weights (ensemble.estimate): widened to exact bounds on the (weighted) rates
        # of rows won and lost, because the bootstrap collapses when few rows change
        from .resampling import discordance_interval

        lo, hi = discordance_interval(d * w / w.mean(), confidence)
        return min(low, lo), max(high, hi)
    else:
        if np.array_equal(pred_a, pred_b):
            return 0.0, 0.0

        def stat(idx):
            idx = idx.astype(int)
            return (_weighted_scores(pred_a[idx], y[idx], C, w[idx])[metric]
                    - _weighted_scores(pred_b[idx], y[idx], C, w[idx])[metric])

        # not a mean over rows: resampled one at a time, fewer resamples on many rows (each costs O(n))
        resamples = int(min(n_resamples, 1000, max(200, 20_000_000 // len(y))))
        res = bootstrap((np.arange(len(y)),), stat, vectorized=False, confidence_level=confidence,
                        n_resamples=resamples, method="percentile", random_state=seed)
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def estimate_adjustment(
    valid_logits,
    y,
    method: str = "uniform",
    *,
    kinds: Sequence[str] = ("prior", "fit"),
    target: np.ndarray | None = None,
    metric: str = "accuracy",
    folds: int = 5,
    repeats: int = 2,
    seed: int = 0,
    confidence: float = 0.95,
    n_resamples: int = 2000,
    full_proba: np.ndarray | None = None,
    **fit_kwargs,
) -> dict[str, AdjustEstimate]:
    """Cross-validate each adjustment in ``kinds`` on top of the weighting ``method``.

    In each fold the weights and then the offsets are fitted on the other folds and the held-out
    rows are predicted with and without the offsets. Scores pool the out-of-fold predictions
    (averaged over repeats), weighted by pi_t(y) / pi_v(y) when ``target`` is given.

    full_proba : array (n, C), optional
        The probabilities of ``method`` fitted on all rows, when the caller has them already
        (else it is fitted here); each estimate's ``adjustment`` is fitted on them.

    Returns
    -------
    dict of kind -> AdjustEstimate
    """
    from .resampling import repeated_folds
    from .weighting import aligned_inputs, fit_weights

    check_adjust("none", metric=metric)
    for kind in kinds:
        check_adjust(kind)
    kinds = [k for k in kinds if k != "none"]
    if "prior" in kinds and target is None:
        raise EnsembleError(NEEDS_PRIOR)
    arrays, names, labels, y = aligned_inputs(valid_logits, y)
    n, C = arrays[0].shape
    k, splits = repeated_folds(y, folds, repeats, seed)
    fit_kwargs = {"names": names, **fit_kwargs}
    base_preds = np.empty((repeats, n), dtype=int)
    preds = {kind: np.empty((repeats, n), dtype=int) for kind in kinds}
    for r in range(repeats):
        for train, test in splits[r * k:(r + 1) * k]:
            w = fit_weights([a[train] for a in arrays], y[train], method, seed=seed, stack_oof=False, **fit_kwargs)
            p_train = w.predict_proba([a[train] for a in arrays])
            p_test = w.predict_proba([a[test] for a in arrays])
            base_preds[r, test] = p_test.argmax(axis=1)
            for kind in kinds:
                adj = fit_adjustment(p_train, y[train], kind, target=target, metric=metric)
                preds[kind][r, test] = adj.apply(p_test).argmax(axis=1)
    weights = _importance(y, target, empirical_prior(y, C))

    def pooled(p):
        return {m: float(np.mean([_weighted_scores(p[r], y, C, weights)[m] for r in range(repeats)])) for m in _METRICS}

    baseline = pooled(base_preds)
    recall_before = np.nanmean([recall_per_class(base_preds[r], y, C) for r in range(repeats)], axis=0)
    if full_proba is None:  # the method fitted on all rows, for each adjustment's full fit
        full_proba = fit_weights(arrays, y, method, seed=seed, **fit_kwargs).predict_proba(arrays)
    out = {}
    for kind in kinds:
        scores = pooled(preds[kind])
        gain = {m: scores[m] - baseline[m] for m in _METRICS}
        interval = {m: _gain_interval(m, preds[kind][0], base_preds[0], y, C, weights, confidence, n_resamples, seed)
                    for m in _METRICS}
        recall = np.nanmean([recall_per_class(preds[kind][r], y, C) for r in range(repeats)], axis=0)
        adj = fit_adjustment(full_proba, y, kind, target=target, metric=metric, labels=labels)
        out[kind] = AdjustEstimate(kind, scores, baseline, gain, interval, recall, recall_before, adj)
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
    return "none", (f"none: the best adjustment, {best}, gains {e.gain[metric]:+.4f} [{lo:+.4f}, {hi:+.4f}] in "
                    f"cross-validated {metric}{under}, an interval that does not exclude zero"), estimates


def prior_from_project(value: str, root: Path) -> str | Path:
    """A project file's ``prior``: "uniform" and shares as given, a file path relative to the file."""
    if not _is_file_spec(value):
        return value
    p = Path(value)
    return p if p.is_absolute() else root / p
