"""The column tasks' part of the report (:meth:`~ensemble.tasks.base.Task.report`): every member
and method of a regression or multi-label ensemble scored on the validation (or out-of-fold)
rows, each method cross-validated as a whole (weights, stack, thresholds, clipping refitted in
every fold), the holdout deciding beside fold groups, and a regression fold mean's squared error
decomposed when there is no holdout. Rendered by :class:`~ensemble.tasks.columns.render.ValueReport`.
"""

from __future__ import annotations

import logging

from typing import Mapping, Sequence

from ensemble.core.errors import EnsembleError
from ensemble.tasks.columns.estimate import (
    AUTO_VALUE_METHODS,
    cross_validate_values,
    method_name,
    select_value_method,
    value_holdout,
)
from ensemble.tasks.columns.render import ValueReport

__all__ = ["report", "value_report", "member_rows"]


def report(job) -> ValueReport:
    """:meth:`~ensemble.tasks.base.Task.report` for regression and multi-label members."""
    from ensemble.averaging.provenance import optimistic_members
    from ensemble.data.splits import open_split
    from ensemble.tasks.columns.vote import thresholds_by_name, training_range, value_settings

    o, source, al, split, training = job.options, job.source, job.al, job.split, job.training
    split.require_labels("ensemble report scores every member and method on them")
    rng = training_range(source, job.data, o.get("train", "train"), job.columns, al.labels, o.get("clip", False))
    settings = value_settings(source.task, len(al.labels), metric=o.get("metric"), combine=o.get("combine"),
                              threshold=thresholds_by_name(source.task, o.get("threshold", "global"), al.labels,
                                                           job.columns),
                              clip=o.get("clip", False), train_range=rng)
    holdout = (open_split(job.data[job.valid], job.valid, job.columns) if training is not None
               and job.valid in job.data else None)
    test = open_split(job.data["test"], "test", job.columns) if training is not None and "test" in job.data else None
    excluded = [] if o.get("include_optimistic") else list(optimistic_members(source.refs, split.digest,
                                                                              o.get("trained_on_valid", ())))
    return value_report(source, al, split, training=training, holdout=holdout, methods=o.get("methods"),
                        settings=settings, cv=job.cv, repeats=o.get("repeats"), seed=o.get("seed", 0),
                        excluded=excluded, test=test)


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
    from ensemble.tasks.columns.vote import say_unfitted

    say_unfitted(task, settings["threshold"], y, names, logging.getLogger(__name__))
    methods = tuple(method_name(m) for m in (methods or AUTO_VALUE_METHODS) if m != "uniform")
    cv = training.folds.fold if training is not None else cv
    estimates = cross_validate_values(task.name, arrays, y, methods, cv=cv, repeats=repeats, seed=seed, **fit)
    choice, reason = select_value_method(estimates)
    decided = {}
    if holdout is not None:
        decided = value_holdout(source, holdout, al.labels, estimates, settings["metric"])
        from ensemble.estimates.holdout import warn_overlap

        warn_overlap(holdout, training.split, decided["overlap"], logging.getLogger(__name__))
        choice, reason = decided["choice"], decided["reason"]
    members = member_rows(task, refs, al.arrays, y, settings)
    fold_mean = {}
    if training is not None and holdout is None and test is not None and task.decomposes:
        fold_mean = regression_fold_mean(source, test, al.labels, fit_idx, choice, estimates, y)
    return ValueReport(task.name, settings["metric"], len(y), members, estimates, choice, reason, names,
                       "out-of-fold" if training is not None else "validation", excluded=list(excluded),
                       holdout=decided, settings=dict(settings), y=y, fold_mean=fold_mean,
                       refit={g: r.name for g, r in source.refits.items()},
                       member_outputs={r.name: a for r, a in zip(refs, al.arrays)})


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
    return {r.name: task.member_row(a, y) for r, a in zip(refs, arrays)}
