"""The vote and the report for regression and multi-label members: the same inputs, members,
cache, fold groups, refits and honest estimate as classification, with the task's own outputs,
combination, fitted weights and thresholds (:mod:`ensemble.combining.values`), estimates
(:mod:`ensemble.estimates.values`) and submission format.

:func:`~ensemble.workflows.vote.vote` and :func:`~ensemble.workflows.report.report` hand their
work here when the members' task is not single-label classification.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from ensemble.combining.values import ValueWeights, fit_value_weights
from ensemble.core.errors import EnsembleError, flag
from ensemble.estimates.values import (
    AUTO_VALUE_METHODS,
    bootstrap_counts,
    cross_validate_values,
    select_value_method,
)
from ensemble.workflows.render import headline_line
from ensemble.workflows.valuereport import ValueReport

log = logging.getLogger(__name__)

__all__ = ["value_vote", "value_report", "combine_rule", "value_settings"]


def combine_rule(task, combine: str | None) -> str:
    """The task's rule for ``combine``: its default for None or classification's default "prob"
    (regression: "mean"); a rule of another task is an error listing this one's."""
    if combine is None or (combine == "prob" and "prob" not in task.combine_rules):
        return task.combine_rules[0]
    if combine not in task.combine_rules:
        raise EnsembleError(f"{flag('combine', combine)} does not apply to {task.name}; use one of "
                            f"{', '.join(task.combine_rules)}")
    return combine


def training_range(source, data: Mapping, train: str, columns: Mapping, labels, clip: bool) -> list | None:
    """``[low, high]`` of each target over the training split's labels (in ``labels`` order), for
    regression members clipped (``clip``); None otherwise, or when no labelled training split is
    given (the training file is read only then)."""
    from ensemble.workflows.gather import open_split

    if not clip or source.task.name != "regression" or train not in data:
        return None
    split = open_split(data[train], train, columns)
    if split.labels is None:
        return None
    y = source.task.targets(split, labels, source.refs[0].name)
    return [y.min(axis=0).tolist(), y.max(axis=0).tolist()]


def value_settings(task, T: int, *, metric=None, combine=None, threshold="global", clip=False,
                   train_range: list | None = None) -> dict:
    """The fitting settings, checked: the primary metric (the task's default for T targets),
    the combination rule, the threshold (multi-label) and clipping (regression: to the training
    labels' range ``train_range`` when given, else to the fitting rows')."""
    from ensemble.tasks.multilabel import check_thresholds

    if metric in (None, "accuracy"):  # classification's default
        metric = task.default_metric(T)
    task.metric(metric)
    if threshold is None:
        threshold = "global"
    if task.name == "multi_label":
        check_thresholds(threshold, what=flag("threshold"))
        if clip:
            raise EnsembleError(f"{flag('clip')} clips regression outputs; these members are multi-label: drop it")
    elif threshold != "global":
        raise EnsembleError(f"{flag('threshold', threshold)} decides multi-label outputs; these members are "
                            f"{task.name}: drop it")
    clip = (train_range if train_range is not None else True) if clip and task.name == "regression" else False
    return {"metric": metric, "combine": combine_rule(task, combine), "threshold": threshold, "clip": clip}


def _method(spec: str) -> str:
    return "score" if spec == "acc" else spec


# ---------------------------------------------------------------------- the vote


def value_vote(g, source, *, kind: str, spec, cv: Mapping, holdout, settings: Mapping, seed: int, write):
    """The fitted (or given) weights of a regression or multi-label vote, and the submission
    written through ``write(fitted, combined, names, estimate)``."""
    task, y = source.task, g.y
    models = tuple(m.name for m in source.members)
    names = task.names(g.valid_split, g.test_al.labels, models[0])
    fit = dict(names=models, targets=names, **settings)
    if kind == "file":  # ``spec``: the ValueWeights read, checked against these members and data
        fitted = spec
        if fitted.task != task.name or tuple(fitted.names) != tuple(names):
            raise EnsembleError(f"weights file fitted for {fitted.task} outputs {', '.join(fitted.names)}; these "
                                f"members are {task.name} with {', '.join(names)}: refit with "
                                f"{flag('weights', '<method>')}")
        estimate = {}
    elif kind == "method" and spec != "uniform" and y is None:  # nothing to fit on: never uniform in silence
        raise EnsembleError(f"{g.valid_split.path if g.valid_split is not None else 'the validation split'}: no "
                            f"labels; {flag('weights', spec)} is fitted on the validation labels ({flag('label', 'COLUMNS')}"
                            f" names them), or use {flag('weights', 'uniform')}")
    elif kind == "fixed" or y is None:
        w = np.asarray(spec, dtype=np.float64) if kind == "fixed" else np.full(len(models), 1 / len(models))
        fitted = ValueWeights(task.name, "fixed" if kind == "fixed" else "uniform", models, w / w.sum(),
                              settings["combine"], names, threshold=_given_threshold(task, settings["threshold"]))
        estimate = {}
    else:
        fitted, estimate = _fitted(task, g, _method(spec), fit, cv, holdout, source, seed)
    fitted.meta = {**fitted.meta, **g.provenance}
    test_combined = fitted.combined(g.test_al.arrays)
    return write(fitted, test_combined, names, estimate)


def _given_threshold(task, threshold):
    if task.name != "multi_label":
        return None
    if isinstance(threshold, str):
        log.warning("no labelled validation rows to fit the threshold on: labels are decided at 0.5 (give one with "
                    "%s)", flag("threshold", "0.4"))
        return 0.5
    return threshold


def _fitted(task, g, spec: str, fit: Mapping, cv: Mapping, holdout, source, seed: int):
    """(weights fitted on the validation (or out-of-fold) rows, the headline's estimate)."""
    arrays, y = g.valid_al.arrays, g.y
    metric = fit["metric"]
    estimates = {}  # a method given by hand is not cross-validated here (vote stays quick): its note says so
    if spec in ("auto", "uniform"):
        methods = AUTO_VALUE_METHODS if spec == "auto" else ()
        estimates = cross_validate_values(task.name, arrays, y, methods, cv=cv.get("cv", 5), seed=seed, **fit)
    estimate = {}
    if spec == "auto":
        spec, reason = select_value_method(estimates)
        decided = value_holdout(source, holdout, g.test_al.labels, estimates, metric) if holdout is not None else {}
        if decided:
            spec, reason = decided["choice"], decided["reason"]
            estimate = {"metric": metric, "estimate": decided["scores"][spec]["score"],
                        "low": decided["scores"][spec]["low"], "high": decided["scores"][spec]["high"],
                        "of": "holdout"}
            g.provenance["auto_holdout"] = decided
        log.info("auto -> %s", reason)
        g.provenance["auto"] = {"chosen": spec, "reason": reason, "candidates": {
            m: {"cross_validated": e.cross_validated, "gain_vs_uniform": e.gain, "gain_interval": list(e.gain_interval)}
            for m, e in estimates.items()}}
    if not estimate and spec in estimates:
        e = estimates[spec]
        estimate = {"metric": metric, "estimate": e.cross_validated[metric], "low": e.interval[0],
                    "high": e.interval[1], "of": "out-of-fold" if cv else "cross-validated"}
        log.info("cross-validated %s %.4f", metric, e.cross_validated[metric])
    elif not estimate:
        estimate = {"metric": metric, "note": f"{spec} is not estimated by vote: ensemble report (or weights=auto) "
                                              "cross-validates it"}
    fitted = estimates[spec].weights if spec in estimates else fit_value_weights(task.name, arrays, y, spec, **fit)
    return fitted, estimate


def value_holdout(source, split, labels, estimates, metric: str) -> dict:
    """With fold groups and a validation split: every candidate fitted on the out-of-fold rows,
    scored on the holdout as submitted (refits in their groups' place), and the choice by a sure
    paired-bootstrap gain over uniform there."""
    from ensemble.estimates.resampling import sure_gain

    task = source.task
    al = source.aligned(split, labels, refit=bool(source.refits))
    m = task.metric(metric)
    counts = bootstrap_counts(len(al.y)).astype(np.float64)
    sign = 1.0 if m.greater else -1.0
    uniform = estimates["uniform"].weights.decided(al.arrays)
    base, base_score = m.resampled(m.stats(uniform, al.y), counts), m(uniform, al.y)
    scores, best, reason = {}, "uniform", "uniform: no fitted method gains surely over uniform on the holdout"
    for name, e in estimates.items():
        pred = e.weights.decided(al.arrays)
        res = m.resampled(m.stats(pred, al.y), counts)
        d = sign * (res - base)
        gain, lo = sign * (m(pred, al.y) - base_score), float(np.quantile(d, 0.025))
        scores[name] = {"score": m(pred, al.y), "low": float(np.quantile(res, 0.025)),
                        "high": float(np.quantile(res, 0.975)), "gain": gain, "gain_low": lo,
                        "gain_high": float(np.quantile(d, 0.975))}
        if name != "uniform" and sure_gain((lo, 0)) and gain > scores.get(best, {}).get("gain", 0.0):
            best, reason = name, (f"{name}: on the holdout ({len(al.y)} rows) {metric} {scores[name]['score']:.4f}, "
                                  f"gain over uniform {gain:+.4f} excludes zero")
    return {"path": str(split.path), "rows": len(al.y), "metric": metric, "scores": scores, "choice": best,
            "reason": reason, "refits": bool(source.refits)}


def headline_of(estimate: Mapping, out, method: str) -> dict:
    return {"submission": Path(out).name, "method": method, "metric": None, "estimate": None, "low": None,
            "high": None, "of": None, **estimate}


def say_headline(headline: Mapping, out) -> None:
    if headline.get("estimate") is not None:
        log.info("%s", headline_line({**headline, "submission": str(out)}), extra={"headline": True})


# ---------------------------------------------------------------------- the report


def value_report(source, al, split, *, training, holdout, methods: Sequence[str] | None, settings: Mapping, cv, repeats,
                 seed: int, excluded: Sequence[str], test=None) -> ValueReport:
    """Every member and method of a regression or multi-label ensemble, scored honestly."""
    task, y = source.task, al.y
    refs = source.refs
    names = task.names(split, al.labels, refs[0].name)
    fit_idx = [i for i, r in enumerate(refs) if r.name not in excluded]
    if not fit_idx:
        raise EnsembleError("every model is marked optimistic (trained on or chosen on the validation rows); "
                            "include_optimistic to fit weights over them anyway")
    arrays = [al.arrays[i] for i in fit_idx]
    fit = dict(names=[refs[i].name for i in fit_idx], targets=names, **settings)
    methods = tuple(_method(m) for m in (methods or AUTO_VALUE_METHODS) if m != "uniform")
    cv = training.folds.fold if training is not None else cv
    estimates = cross_validate_values(task.name, arrays, y, methods, cv=cv, repeats=repeats, seed=seed, **fit)
    choice, reason = select_value_method(estimates)
    decided = {}
    if holdout is not None:
        decided = value_holdout(source, holdout, al.labels, estimates, settings["metric"])
        choice, reason = decided["choice"], decided["reason"]
    members = member_rows(task, refs, al.arrays, y, settings)
    fold_mean = {}
    if training is not None and holdout is None and test is not None and task.name == "regression":
        fold_mean = regression_fold_mean(source, test, al.labels, fit_idx, choice, estimates, y)
    return ValueReport(task.name, settings["metric"], len(y), members, estimates, choice, reason, names,
                       "out-of-fold" if training is not None else "validation", excluded=list(excluded),
                       holdout=decided, settings=dict(settings), y=y, fold_mean=fold_mean)


def regression_fold_mean(source, test_split, labels, fit_idx, choice: str, estimates, y) -> dict:
    """Fold groups without a holdout: the squared error of the fold mean that is submitted, the
    out-of-fold squared error minus the fold ensembles' ambiguity on the unlabelled test rows
    (:func:`~ensemble.estimates.decomposition.decomposed_squared_error`). Not for clipped outputs
    (no longer linear in the members)."""
    from ensemble.core.combination import align
    from ensemble.estimates.decomposition import decomposed_squared_error

    e = estimates[choice]
    if e.weights.clip is not None:
        return {"why": "clipped outputs are not linear in the members: the decomposition does not hold"}
    refs = [source.refs[i] for i in fit_idx]
    fold_preds = []
    for k in range(len(refs[0].parts)):  # the fold-k ensemble on the test rows: every group's fold-k model
        arrays = [align([source.named(source.logits(r.parts[k], test_split))], ids=test_split.ids,
                        labels=labels).arrays[0] for r in refs]
        fold_preds.append(e.weights.combined(arrays))
    return {"method": choice, "test_split": str(test_split.path),
            **decomposed_squared_error(e.oof, y, fold_preds)}


def member_rows(task, refs, arrays, y, settings: Mapping) -> dict:
    """Each member's metrics on its own outputs (multi-label: decided at 0.5, and its mean
    average precision), and the spread of its outputs."""
    out = {}
    for r, a in zip(refs, arrays):
        if task.name == "multi_label":
            from ensemble.tasks.multilabel import decide, sigmoid

            p = sigmoid(a)
            row = {m: task.metric(m)(decide(p, 0.5), y) for m in task.metrics}
            row["average_precision"] = average_precision(p, y)
        else:
            row = {m: task.metric(m)(a, y) for m in task.metrics}
            row.update(mean=float(np.mean(a)), std=float(np.std(a)))
        out[r.name] = row
    return out


def average_precision(proba: np.ndarray, y: np.ndarray) -> float:
    """scikit-learn's macro average precision over the labels that occur (nan when none does)."""
    from sklearn.metrics import average_precision_score

    keep = y.sum(axis=0) > 0
    return float(average_precision_score(y[:, keep], proba[:, keep], average="macro")) if keep.any() else float("nan")

