"""The column tasks' part of the vote (:meth:`~ensemble.tasks.base.Task.vote`): the settings
(metric, combination, threshold, clipping) checked, the weights fitted per target (``auto``
choosing by the cross-validated gain over uniform, or by the holdout beside fold groups), given,
or read from a weights file, the headline's estimate, and the submission in the sample's format,
written through the vote workflow's paths and save.
"""

from __future__ import annotations

import logging
from typing import Mapping

import numpy as np

from ensemble.core.errors import EnsembleError, data_fix, flag, option
from ensemble.core.notices import notice
from ensemble.estimates.headline import VOTE_LOGGER, headline_of, say_headline, with_shift
from ensemble.tasks.columns.estimate import (
    AUTO_VALUE_METHODS,
    cross_validate_values,
    method_name,
    select_value_method,
    value_holdout,
)
from ensemble.tasks.columns.fitting import ValueWeights, fit_value_weights

log = logging.getLogger(VOTE_LOGGER)  # held until the vote's headline is said

__all__ = ["check_options", "vote_settings", "vote", "value_vote", "combine_rule", "value_settings",
           "training_range"]


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
    from ensemble.data.splits import open_split

    if not clip or not source.task.clips or train not in data:
        return None
    split = open_split(data[train], train, columns)
    if split.labels is None:
        return None
    y = source.task.targets(split, labels, source.refs[0].name)
    return [y.min(axis=0).tolist(), y.max(axis=0).tolist()]


def thresholds_by_name(task, threshold, labels, columns: Mapping):
    """Per-label thresholds given by hand, in the order of ``[data] label`` (``columns["label"]``),
    put in the order of the aligned outputs ``labels`` (the first member's): matched by name, never
    by position. One threshold, or a fitted one, is returned as it is."""
    from ensemble.core.options import check_thresholds
    from ensemble.core.combination import generic_names

    if not task.thresholded or threshold is None or (isinstance(threshold, str) and threshold in ("global", "per_label")):
        return threshold
    t = check_thresholds(threshold, what=flag("threshold"))
    if np.ndim(t) == 0:
        return t
    labels = tuple(map(str, labels))
    if generic_names(labels):  # outputs unnamed: they are the label columns, by position
        return t
    cols = columns.get("label")
    cols = [cols] if isinstance(cols, str) else list(cols or ())
    if len(cols) != len(t):
        said = f"{len(cols)} label columns ({', '.join(cols)})" if cols else "no label columns"
        raise EnsembleError(f"{flag('threshold', ','.join(f'{v:g}' for v in t))}: {len(t)} per-label thresholds follow "
                            f"the label columns' order, and there are {said}; {option('label', 'COLUMNS')} names them "
                            "in the thresholds' order")
    from ensemble.tasks.columns.base import match_names

    index = match_names(cols, labels, path=f"[data] label / {flag('label')}", model="the members", what="label")
    return np.asarray([t[i] for i in index], dtype=np.float64)


def value_settings(task, T: int, *, metric=None, combine=None, threshold="global", clip=False,
                   train_range: list | None = None) -> dict:
    """The fitting settings, checked: the primary metric (the task's default for T targets),
    the combination rule, the threshold (multi-label) and clipping (regression: to the training
    labels' range ``train_range`` when given, else to the fitting rows')."""
    if metric in (None, "accuracy"):  # classification's default
        metric = task.default_metric(T)
    task.metric(metric)
    if threshold is None:
        threshold = "global"
    task.check_settings(threshold=threshold, clip=clip)
    clip = (train_range if train_range is not None else True) if clip and task.clips else False
    return {"metric": metric, "combine": combine_rule(task, combine), "threshold": threshold, "clip": clip}


# ---------------------------------------------------------------------- the vote


def check_options(task, options: Mapping, *, kind: str = "method") -> None:
    """The options a regression or multi-label vote takes, checked before any output is read; a
    classifier's refused, and so are the settings a weights file keeps (``kind`` "file")."""
    given = [f for f, on in (("adjust", options.get("adjust", "none") != "none"),
                             ("temperature", options.get("temperature")), ("calibrate", options.get("calibrate"))) if on]
    if given:
        raise EnsembleError(f"{flag(given[0])} is for classifiers' probabilities; these members are {task.name}: "
                            "drop it")
    if options.get("prior") is not None:
        raise EnsembleError(f"{flag('prior', options['prior'])} is a class prior for classifiers' adjustments; these "
                            f"members are {task.name}: drop it")
    from ensemble.core.options import check_option

    check_option("adjust_metric", options.get("adjust_metric") or "accuracy")
    if options.get("metric") not in (None, "accuracy"):  # "accuracy": the report's default, the task's own here
        task.metric(options["metric"])
    task.check_settings(threshold=options.get("threshold") or "global", clip=options.get("clip", False))
    if options.get("proba") and not task.thresholded:
        raise EnsembleError(f"{flag('proba')} adds probability columns; {task.name} outputs are values, submitted as "
                            "they are: drop it")
    if kind == "file":  # the file's combination, threshold and clipping are what it was fitted and estimated with
        given = [f for f, on in (("threshold", options.get("threshold") not in (None, "global")),
                                 ("clip", bool(options.get("clip"))),
                                 ("combine", options.get("combine") not in (None, "prob"))) if on]
        if given:
            value = options[given[0]]
            raise EnsembleError(f"{options.get('weights')}: a weights file keeps the {given[0]} it was fitted with; drop "
                                f"{flag(given[0], None if value is True else value)}, or refit with "
                                f"{flag('weights', '<method>')} and {flag(given[0], None if value is True else value)}")


def vote_settings(task, options: Mapping, *, data: Mapping, train: str, columns: Mapping, source, labels) -> dict:
    """The settings a regression or multi-label vote runs with: metric, combination, threshold and
    clipping (to the training labels' range when a labelled training split is given)."""
    clip = options.get("clip", False)
    given = options.get("threshold")
    threshold = thresholds_by_name(task, "global" if given is None else given, labels, columns)
    settings = value_settings(task, len(labels), metric=options.get("metric"), combine=options.get("combine"),
                              threshold=threshold, clip=clip,
                              train_range=training_range(source, data, train, columns, labels, clip))
    return {**settings, "seed": options.get("seed", 0), "label_sep": columns.get("label_sep")}


def vote(job):
    """The weights (fitted, chosen by ``auto``, fixed or read), the headline's estimate and the
    submission of a regression or multi-label vote."""
    s, source, kind, spec = job.settings, job.source, job.kind, job.spec
    procedure = {"weights": str(spec) if kind != "fixed" else [float(v) for v in spec], "combine": s["combine"],
                 "metric": s["metric"], "threshold": _listed(s["threshold"]), "clip": s["clip"],
                 "members": sorted(m.name for m in source.members)}
    if kind == "file":  # what is applied: the file's own settings (check_options refused any others given)
        f = job.loaded
        procedure.update(combine=f.combine, threshold=_listed(f.threshold),
                         clip=None if f.clip is None else [_listed(np.asarray(c)) for c in f.clip])
    settings = {k: s[k] for k in ("metric", "combine", "threshold", "clip")}

    def write(fitted, combined, names, estimate):
        return _write(fitted, combined, names, estimate, job, procedure)

    return value_vote(job.gathered, source, kind=kind, spec=job.loaded if kind == "file" else spec, cv=job.cv,
                      holdout=job.holdout, settings=settings, seed=s["seed"], write=write)


def _write(fitted, combined: np.ndarray, names, estimate: dict, job, procedure: dict):
    """The regression or multi-label submission, its weights file and sidecar, as one set."""
    g, o = job.gathered, job.output
    method = fitted.method
    out, weights_path = job.paths(method, procedure)
    frame = g.task.submission(g.test_split.ids, combined, names, threshold=fitted.threshold,
                              sample_submission=o.sample_submission, proba_columns=o.proba,
                              id_column=g.test_split.id_column or "id", label_sep=job.settings["label_sep"])
    headline = with_shift(headline_of(estimate, out, method), g.shift_for(estimate.get("of")))
    sidecar = {"task": g.task.name, "weights_file": None if weights_path is None else str(weights_path.resolve()),
               "method": method, "combine": fitted.combine, "weights": fitted.to_dict()["weights"],
               "threshold": _listed(fitted.threshold), "names": list(names),
               "test": {"path": str(g.test_split.path.resolve()), "data_digest": g.test_split.digest,
                        "rows": len(g.test_split)}, **g.provenance, **({"shift": g.shift} if g.shift is not None else {}),
               "procedure": procedure, "headline": headline}
    frame = job.save(frame, out, sidecar, fitted, weights_path if job.kind == "method" else None)
    frame.attrs.update(path=str(out), weights=fitted, headline=headline)
    say_headline(headline, out)
    log.info("wrote %s (%d rows; %s %s)", out, len(frame), g.task.name, ", ".join(map(str, names[:6])))
    return frame


def _listed(v):
    return v.tolist() if isinstance(v, np.ndarray) else list(v) if isinstance(v, (list, tuple)) else v


def value_vote(g, source, *, kind: str, spec, cv: Mapping, holdout, settings: Mapping, seed: int, write):
    """The fitted (or given) weights of a regression or multi-label vote, and the submission
    written through ``write(fitted, combined, names, estimate)``."""
    task, y = source.task, g.y
    models = tuple(m.name for m in source.members)
    names = task.names(g.valid_split, g.test_al.labels, models[0])
    fit = dict(names=models, targets=names, **settings)
    say_unfitted(task, settings["threshold"], y, names)
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
    elif kind == "fixed" and y is not None:  # the weights given; the threshold and clipping fitted as for any method
        fitted = fit_value_weights(task.name, g.valid_al.arrays, y, "fixed", given=spec, **fit)
        estimate = {}
    elif kind == "fixed" or y is None:
        w = np.asarray(spec, dtype=np.float64) if kind == "fixed" else np.full(len(models), 1 / len(models))
        fitted = ValueWeights(task.name, "fixed" if kind == "fixed" else "uniform", models, w / w.sum(),
                              settings["combine"], names, threshold=_given_threshold(task, settings["threshold"]),
                              clip=_given_clip(task, settings["clip"], g))
        estimate = {}
    else:
        fitted, estimate = _fitted(task, g, method_name(spec), fit, cv, holdout, source, seed)
    fitted.meta = {**fitted.meta, **g.provenance}
    test_combined = fitted.combined(g.test_al.arrays)
    return write(fitted, test_combined, names, estimate)


def say_unfitted(task, threshold, y, names, logger=None) -> list[str]:
    """Per-label thresholds asked for, and labels with no positive row to fit theirs on: said in a
    warning (they take the global threshold, :func:`~ensemble.tasks.columns.fitting.fit_threshold`)."""
    from ensemble.tasks.columns.fitting import unfitted_labels

    if not task.thresholded or y is None or not (isinstance(threshold, str) and threshold == "per_label"):
        return []
    empty = unfitted_labels(y, names)
    if empty:
        (logger or log).warning("%s: no positive row among the %d fitted on, so no threshold of its own: it takes the "
                                "global threshold (fitted over every label)", ", ".join(empty), len(y))
    return empty


def _given_threshold(task, threshold):
    if not task.thresholded:
        return None
    if isinstance(threshold, str):
        log.warning("no labelled validation rows to fit the threshold on: labels are decided at 0.5 (give one with "
                    "%s)", flag("threshold", "0.4"))
        return 0.5
    return threshold


def _given_clip(task, clip, g):
    """The clipping range with no labelled validation rows: the training labels' (given), or an
    error (the validation labels' range is what ``clip`` falls back to, and there are none)."""
    if clip is False or clip is None or not task.clips:
        return None
    if clip is True:
        where = g.valid_split.path if g.valid_split is not None else "the validation split"
        raise EnsembleError(f"{where}: no labels to take {flag('clip')}'s range from; give a labelled training split: "
                            f"{data_fix('train', 'FILE')}, or drop {flag('clip')}")
    return tuple(np.asarray(c, dtype=np.float64) for c in clip)


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
            s = decided["scores"][spec + (" with refits" if decided["decided_on"] == "refits" else "")]
            estimate = {"metric": metric, "estimate": s["score"], "low": s["low"], "high": s["high"], "of": "holdout"}
            if source.refits and decided["decided_on"] == "fold means":  # the refits lost there: not submitted
                g.drop_refits(source, decided)
            from ensemble.estimates.headline import holdout_note

            note = holdout_note(decided)  # rows shared with training, or members chosen on it
            if note:
                estimate["note"] = note
            g.provenance["auto_holdout"] = decided
        notice(log, "auto -> %s", reason)
        g.provenance["auto"] = {"chosen": spec, "reason": reason, "candidates": {
            m: {"cross_validated": e.cross_validated, "gain_vs_uniform": e.gain, "gain_interval": list(e.gain_interval)}
            for m, e in estimates.items()}}
    if not estimate and spec in estimates:
        e = estimates[spec]
        estimate = {"metric": metric, "estimate": e.cross_validated[metric], "low": e.interval[0],
                    "high": e.interval[1], "of": "out-of-fold" if cv else "cross-validated"}
        if cv and source.refits:  # the refits are submitted; no out-of-fold figure is of them
            from ensemble.estimates.headline import refits_note

            estimate["note"] = refits_note({grp: r.name for grp, r in source.refits.items()})
        log.info("cross-validated %s %.4f", metric, e.cross_validated[metric])
    elif not estimate:
        estimate = {"metric": metric, "note": f"{spec} is not estimated by vote: ensemble report (or weights=auto) "
                                              "cross-validates it"}
    fitted = estimates[spec].weights if spec in estimates else fit_value_weights(task.name, arrays, y, spec, **fit)
    return fitted, estimate
