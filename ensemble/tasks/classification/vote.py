"""Classification's part of the vote (:meth:`~ensemble.tasks.base.Task.vote`): the weights fitted
on the validation (or out-of-fold) rows, ``auto`` choosing a method by its cross-validated gain
over uniform (or by the holdout beside fold groups), fixed by hand, or read from a weights file;
a class-prior adjustment on top; the headline's accuracy estimate; the submission in the sample's
label format, written through the vote workflow's paths and save.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import Mapping, Sequence

import numpy as np

from ensemble.averaging.provenance import model_notes
from ensemble.core.combination import as_log_probs
from ensemble.core.errors import EnsembleError, data_fix, flag, option
from ensemble.core.options import allowed
from ensemble.core.notices import notice
from ensemble.estimates.headline import VOTE_LOGGER, say_headline, with_shift

log = logging.getLogger(VOTE_LOGGER)  # held until the vote's headline is said

__all__ = ["ClassificationSettings", "check_options", "vote_settings", "vote", "class_counts"]


@dataclass(frozen=True)
class ClassificationSettings:
    """A classifier vote's settings: the fit_weights options, the class-prior adjustment and the
    class of each index of an integer label column."""

    combine: str = "prob"
    temperature: bool = False
    calibrate: bool = False
    acc_power: float = 1.0
    seed: int = 0
    adjust: str = "none"
    prior: object = None
    adjust_metric: str = "accuracy"
    class_order: object = None
    metric: str = "accuracy"  # the primary metric: what auto, the estimates and acc/best weights follow
    weights: object = "uniform"  # as given, for messages
    need_valid: bool = False
    columns: Mapping | None = None  # how the data files are read (a prior given as a file)


def check_options(options: Mapping, *, kind: str) -> None:
    """The options a classifier vote takes, checked before any output is read; the regression and
    multi-label ones refused."""
    from ensemble.tasks.classification.offsets import check_adjust, needs_prior

    adjust = options.get("adjust", "none")
    check_adjust(adjust, metric=options.get("adjust_metric") or "accuracy", auto=True)
    if kind == "file" and adjust != "none":
        raise EnsembleError(f"{options.get('weights')}: a weights file keeps the adjustment it "
                            f"was fitted with; {option('adjust', 'none')}, or refit with {flag('weights', '<method>')} "
                            f"and {flag('adjust', '...')}")
    if adjust == "prior" and options.get("prior") is None:
        raise EnsembleError(needs_prior())
    if options.get("clip"):
        raise EnsembleError(f"{flag('clip')} clips regression outputs; these members are classifiers: drop it")
    if options.get("threshold") not in (None, "global"):
        raise EnsembleError(f"{flag('threshold', options['threshold'])} decides multi-label outputs; these members are "
                            "classifiers: drop it")
    check_metric(options.get("metric") or "accuracy", combine=options.get("combine") or "prob", adjust=adjust,
                 calibrate=bool(options.get("calibrate")), scorers=kind == "report")


def _is_scorer(name: str) -> bool:
    from sklearn.metrics import get_scorer_names

    return name in get_scorer_names()


def check_metric(metric: str, *, combine: str = "prob", adjust: str = "none", calibrate: bool = False,
                 scorers: bool = False) -> None:
    """The primary metric of a classifier ensemble, and the options it rules out: a rank average
    scores rows for ROC AUC only; a class-prior adjustment is fitted for accuracy or macro-F1.
    ``scorers``: a report also compares by a scikit-learn scorer's name (its headline stays in
    accuracy)."""
    from ensemble.core.scores import CLASS_METRICS

    if metric not in CLASS_METRICS and not (scorers and _is_scorer(metric)):
        also = " or a scikit-learn scorer's name" if scorers else ""
        raise EnsembleError(f"{flag('metric', metric)}: a classifiers' ensemble is decided by one of "
                            f"{', '.join(CLASS_METRICS)}{also}; got {metric!r}")
    if combine == "rank" and metric != "roc_auc":
        raise EnsembleError(f"{flag('combine', 'rank')} averages the members' orders of the rows, not their "
                            f"probabilities: it is for {flag('metric', 'roc_auc')} (the metric is {metric}); give "
                            f"{flag('metric', 'roc_auc')}, or another {flag('combine', '...')}")
    if combine == "rank" and calibrate:
        raise EnsembleError(f"{flag('calibrate')} scales probabilities and {flag('combine', 'rank')} gives ranks: "
                            "drop one")
    if adjust != "none" and metric not in allowed("adjust_metric"):  # what an adjustment can be fitted for
        raise EnsembleError(f"{flag('adjust', adjust)} fits class offsets for accuracy or macro_f1, and the metric is "
                            f"{metric}: {option('adjust', 'none')}, or {flag('metric', 'accuracy')}")


def vote_settings(options: Mapping, *, source, columns: Mapping) -> ClassificationSettings:
    """The settings a classifier vote runs with (:func:`check_options` has checked them)."""
    keep = {k: options[k] for k in ("combine", "temperature", "calibrate", "acc_power", "seed", "adjust", "prior",
                                     "adjust_metric", "weights", "need_valid") if k in options}
    from ensemble.tasks.classification.offsets import adjust_metric_for

    metric = options.get("metric") or "accuracy"
    keep["adjust_metric"] = adjust_metric_for(options.get("adjust_metric"), metric)  # it follows the metric
    return ClassificationSettings(**keep, metric=metric, class_order=source.class_order, columns=columns)


def vote(job):
    """The weights (fitted, chosen by ``auto``, fixed or read), the adjustment, the headline's
    estimate and the submission of a classifier vote."""
    g, source, s = job.gathered, job.source, job.settings
    kind, spec = job.kind, job.spec
    if isinstance(spec, str) and spec == "score":  # regression's and multi-label's name for acc
        spec = "acc"
    _check_validation(g, source.refs, fitted_method=kind == "method" and spec != "uniform", need_valid=s.need_valid,
                      weights=s.weights, adjust=s.adjust)
    if kind == "file":  # the file's own combination (and calibration) must suit the metric as a given one would
        try:
            check_metric(s.metric, combine=job.loaded.combine, calibrate=job.loaded.calibration is not None)
        except EnsembleError as e:
            raise EnsembleError(f"{s.weights}: fitted with combine={job.loaded.combine}: {e}") from None
    if s.metric == "qwk":
        _say_ordinal(g.test_al.labels)
    fit_kwargs = dict(combine=s.combine, temperature=s.temperature, calibrate=s.calibrate, acc_power=s.acc_power,
                      member_metric=s.metric, seed=s.seed, names=[m.name for m in source.members])
    fitted = _weights(kind, spec, job.loaded, g, source, fit_kwargs, job.cv, job.holdout)
    if s.adjust != "none":
        fitted = _adjust(fitted, s.adjust, s.prior, s.adjust_metric, g.valid_al, g.y, g.valid_split, g.test_al.labels,
                         s.columns, g.provenance, fit_kwargs, store=source.estimates, cv=job.cv)
        g.estimate = _adjusted_estimate(g, fitted, bool(job.cv))
    _say_apparent(fitted, kind, s.adjust)
    test_proba = fitted.predict_proba(g.test_al.arrays)
    if g.y is not None:
        _flag_one_class(test_proba, g.y, g.test_al.labels, fitted)
    procedure = {"weights": str(spec) if kind != "fixed" else [float(v) for v in spec], "combine": fitted.combine,
                 "metric": s.metric, "adjust": s.adjust, "temperature": s.temperature, "calibrate": s.calibrate,
                 "members": sorted(m.name for m in source.members)}
    return _write(fitted, test_proba, g, job, procedure=procedure)


def _say_ordinal(labels) -> None:
    """Quadratic weighted kappa weighs a confusion by the distance between the two classes in the
    members' column order: say that order, and warn when numeric class names run otherwise."""
    names = [str(c) for c in labels]
    numeric = all(c.lstrip("-").isdigit() for c in names)
    shown = " < ".join(names if len(names) <= 12 else [*names[:5], "...", *names[-2:]])
    if numeric and [int(c) for c in names] != sorted(int(c) for c in names):
        log.warning("qwk weighs classes by their distance in the members' order %s, which is not their numeric "
                    "order: set id2label (and label2id) in the members' config.json in numeric order, or the kappa "
                    "is not the competition's", shown)
    else:
        notice(log, "qwk: classes are ordinal as %s", shown)


def _say_apparent(fitted, kind: str, adjust: str) -> None:
    """The weights with their validation scores, and whether those are in-sample."""
    if not fitted.apparent:
        return
    log.info("%r", fitted)
    if kind == "method" and fitted.method != "uniform" or adjust != "none":
        log.info("validation scores of these weights are in-sample (fitted on the same rows): optimistic")
    else:
        log.info("validation scores of these weights: nothing was fitted on those rows")


def _check_validation(g, refs, *, fitted_method: bool, need_valid: bool, weights: str, adjust: str) -> None:
    """Errors first (nothing can be fitted on one class), then what the user should know: members
    at chance level, classes with no validation row, members whose scores there are optimistic."""
    y = g.y
    if y is None:
        return
    from ensemble.core.scores import at_chance, need_classes

    labels = g.test_al.labels
    if fitted_method:
        need_classes(y, flag("weights", weights), labels)
    if adjust != "none":
        need_classes(y, flag("adjust", adjust), labels)
    for r, a in zip(refs, g.valid_al.arrays):
        why = at_chance(a, y)
        if why:
            log.warning("%s: %s", r.name, why)
    absent = [c for c, k in zip(labels, np.bincount(y, minlength=len(labels))) if k == 0]
    if absent and (need_valid or adjust != "none"):
        log.warning("%s: no validation row of class %s: fitted weights never see it, and a class-prior "
                    "adjustment leaves it alone", g.valid_split.path, ", ".join(absent))
    if need_valid:
        for r in refs:
            note, optimistic = model_notes(r.folder, g.valid_split.digest)
            if optimistic:
                log.warning("%s: %s; fitted weights will favour it (ensemble report leaves it out)", r.name, note)


def _weights(kind: str, spec, loaded, g, source, fit_kwargs: dict, cv: Mapping = {},
             holdout=None):
    """The Weights to vote with: fitted on validation (a method, auto choosing it by a
    cross-validated estimate, or, for fold groups with a ``holdout`` split, by their scores
    there), fixed by hand, or a weights file checked against its inputs."""
    from ensemble.tasks.classification.weights import Weights
    from ensemble.core.scores import scores
    from ensemble.tasks.classification.procedure import Procedure

    labels, y, names = g.test_al.labels, g.y, fit_kwargs["names"]
    if kind == "file":  # checked against the members, data and folds by the vote workflow
        return loaded
    if kind == "fixed":
        fixed = Weights("fixed", tuple(names), spec / spec.sum(), fit_kwargs["combine"], labels, meta=g.provenance)
        return fixed if y is None else replace(fixed, apparent=scores(fixed.predict_proba(g.valid_al.arrays), y))
    if spec != "uniform" and y is None:
        g.valid_split.require_labels(f"{flag('weights', spec)} is fitted on validation labels (or use "
                                     f"{flag('weights', 'uniform')})")
    estimates, decided = {}, {}  # auto's estimates, and the holdout's scores when it decided
    if spec == "auto":
        from ensemble.tasks.classification.estimate import select_method

        # log-probabilities once for every estimate (their keys hash them, as the report's do)
        log_probs = [as_log_probs(a) for a in g.valid_al.arrays]
        spec, reason, estimates = select_method(log_probs, y, metric=fit_kwargs["member_metric"],
                                                store=source.estimates, **cv, **fit_kwargs)
        decided = _on_holdout(holdout, source, g, estimates, fit_kwargs["combine"], (spec, reason),
                              fit_kwargs["member_metric"])
        if decided and source.refits and decided["decided_on"] == "fold means":
            g.drop_refits(source, decided)
        spec, reason = (decided["choice"], decided["reason"]) if decided else (spec, reason)
        notice(log, "auto -> %s", reason)
        g.provenance["auto"] = {"chosen": spec, "reason": reason, "candidates": {
            m: {"cross_validated": dict(e.cross_validated), "gain_vs_uniform": dict(e.gain_vs_uniform),
                "gain_interval": {k: list(v) for k, v in e.gain_interval.items()}, "mcnemar_p": e.mcnemar_p}
            for m, e in estimates.items()}}
        if decided:
            g.provenance["auto"]["holdout"] = {k: decided[k] for k in ("path", "rows", "metric", "scores", "decided_on",
                                                                       "oof_choice", "oof_reason", "overlap", "used_by")}
    g.estimate = _estimate_of(spec, g, fit_kwargs, cv, estimates, decided)
    if g.estimate.get("of") == "out-of-fold" and source.refits:  # the refits are submitted; no figure is of them
        from ensemble.estimates.headline import refits_note

        g.estimate["note"] = refits_note({grp: r.name for grp, r in source.refits.items()})
    if y is not None:
        fitted = Procedure.of(spec, **fit_kwargs).weights.fit(g.valid_al.arrays, y, names=names)
    else:
        fitted = Weights("uniform", tuple(names), np.full(len(names), 1 / len(names)), fit_kwargs["combine"], labels)
    return Weights(fitted.method, fitted.models, fitted.weights, fitted.combine, labels, fitted.temperatures,
                   fitted.calibration, fitted.stacker, fitted.apparent, {**fitted.meta, **g.provenance})


def _estimate_of(spec: str, g, fit_kwargs: dict, cv: Mapping, estimates: Mapping, decided: Mapping) -> dict:
    """What the submission of method ``spec`` will score on unseen data, in the vote's metric: its
    holdout score when the holdout decided, else its cross-validated (fold groups: out-of-fold)
    score as ``auto`` estimated it, with its interval (:func:`~ensemble.tasks.classification.estimate.estimate_interval`);
    uniform's own score where nothing is fitted. A method given by hand is not estimated (a note
    says so). Empty without labels."""
    from ensemble.estimates.headline import holdout_note
    from ensemble.tasks.classification.estimate import estimate_interval, metric_value

    y, metric = g.y, fit_kwargs["member_metric"]
    if y is None:
        return {}
    if decided:
        s = decided["scores"][spec + (" with refits" if decided["decided_on"] == "refits" else "")]
        note = holdout_note(decided)
        return {"metric": decided["metric"], "estimate": s["score"], "low": s["low"], "high": s["high"], "of": "holdout",
                **({"note": note} if note else {})}
    if spec == "uniform":
        from ensemble.core.combination import combine as combine_logits

        proba = combine_logits(g.valid_al.arrays, None, fit_kwargs["combine"])
        value = metric_value(metric, proba, y)
    elif spec in estimates:
        proba, value = estimates[spec].oof_proba, estimates[spec].cross_validated[metric]
    else:  # a method given by hand is not cross-validated here (vote stays a second's work)
        return {"metric": metric, "note": f"{spec} is not estimated by vote: ensemble report (or weights=auto) "
                                           "cross-validates it"}
    low, high = estimate_interval(metric, value, proba, y)
    return {"metric": metric, "estimate": float(value), "low": low, "high": high,
            "of": "out-of-fold" if cv else "cross-validated"}


def _adjusted_estimate(g, fitted, oof: bool) -> dict:
    """The headline's estimate once a class-prior adjustment is applied: the cross-validated
    score of the weights and the adjustment together when ``--adjust auto`` estimated it in the
    headline's metric; else the weights' estimate, saying the adjustment is not in it."""
    kind = (fitted.adjustment or {}).get("kind", "none")
    if kind == "none" or not g.estimate:
        return g.estimate
    metric = g.estimate.get("metric", "accuracy")
    chosen = g.provenance.get("adjust_auto", {}).get("candidates", {}).get(kind)
    if chosen is None or metric not in chosen["cross_validated"]:
        return {**g.estimate, "note": f"the {kind} adjustment is not in this estimate (ensemble report estimates it)"}
    from ensemble.estimates.resampling import wilson

    value, rows = chosen["cross_validated"][metric], len(g.y)
    # accuracy's interval from its rows; the adjustment's estimate keeps no predictions to resample
    low, high = wilson(int(round(value * rows)), rows) if metric == "accuracy" else (None, None)
    return {"metric": metric, "estimate": float(value), "low": low, "high": high,
            "of": "out-of-fold" if oof else "cross-validated"}


def _on_holdout(holdout, source, g, estimates, combine: str, oof_choice, metric: str) -> dict:
    """With fold groups and a holdout: the candidates scored there as submitted, and the choice."""
    if holdout is None:
        return {}
    from ensemble.tasks.classification.estimate import AUTO_METHODS
    from ensemble.tasks.classification.holdout import score_holdout

    return score_holdout(source, holdout, g.test_al.labels, range(len(source.refs)), estimates, combine, AUTO_METHODS,
                         metric, oof_choice)


def _write(fitted, test_proba: np.ndarray, g, job, *, procedure: dict):
    """The submission, the weights file (for a fitted method) and the sidecar, as one set: named
    after the method and adjustment; what this vote created is removed when the set fails."""
    labels = g.test_al.labels
    kind, o = job.kind, job.output
    method = fitted.method
    adjusted = fitted.adjustment is not None and fitted.adjustment.get("kind") != "none" and kind != "file"
    if adjusted:
        method = f"{method}-{fitted.adjustment['kind']}"
    out, weights_path = job.paths(method, procedure)
    headline = with_shift({"submission": out.name, "method": method, "metric": None, "estimate": None, "low": None,
                           "high": None, "of": None, **g.estimate}, g.shift_for(g.estimate.get("of")))
    sidecar = {"weights_file": None if weights_path is None else str(weights_path.resolve()),
               "method": method, "combine": fitted.combine,
               "weights": {m: float(w) for m, w in zip(fitted.models, fitted.weights)},
               "adjustment": fitted.adjustment,
               "test": {"path": str(g.test_split.path.resolve()), "data_digest": g.test_split.digest,
                        "rows": len(g.test_split)},
               **g.provenance, **({"shift": g.shift} if g.shift is not None else {}), "procedure": procedure,
               "headline": headline}
    frame = g.task.submission(g.test_split.ids, test_proba, labels, sample_submission=o.sample_submission,
                            proba_columns=o.proba, id_column=g.test_split.id_column or "id",
                            label_column=(g.valid_split.label_column if g.valid_split is not None else None) or "label",
                            class_order=job.settings.class_order,
                            member_orders={lg.model: lg.labels for lg in g.test_al.logits},
                            text_columns=g.test_split.text_columns,
                            probabilities=job.settings.metric in ("log_loss", "roc_auc"))
    frame = job.save(frame, out, sidecar, fitted, weights_path if kind == "method" else None)
    frame.attrs.update(path=str(out), weights=fitted, headline=sidecar["headline"])
    say_headline(sidecar["headline"], out)
    log.info("wrote %s (%d rows; %s)", out, len(frame),
             class_counts(labels, np.bincount(test_proba.argmax(axis=1), minlength=len(labels))))
    return frame


def class_counts(labels: Sequence[str], counts: np.ndarray, top: int = 6) -> str:
    """``neg: 61, pos: 91`` for a few classes; for many, the ``top`` largest and "and N more"."""
    if len(labels) <= top + 2:
        return ", ".join(f"{c}: {n}" for c, n in zip(labels, counts))
    order = np.argsort(-np.asarray(counts), kind="stable")[:top]
    rest = len(labels) - top
    return ", ".join(f"{labels[i]}: {counts[i]}" for i in order) + (
        f", and {rest} more classes ({int(np.sum(counts) - np.sum(np.asarray(counts)[order]))} rows)")


def _adjust(fitted, adjust, prior, metric, valid_al, y, valid_split, labels, columns, provenance, fit_kwargs, *,
            store=None, cv: Mapping = {}):
    """The weights with a class-prior adjustment fitted on validation (``auto``: estimated first)."""
    from ensemble.core.scores import scores
    from ensemble.data.priors import class_prior
    from ensemble.tasks.classification.offset_choice import select_adjustment
    from ensemble.tasks.classification.procedure import AdjustMethod

    if y is None:
        what = "is not given" if valid_split is None else f"({valid_split.path}) has no labels"
        raise EnsembleError(f"{flag('adjust', adjust)} is fitted on labelled validation rows, but the validation split "
                            f"{what}; {data_fix('valid')} with a label column, or {option('adjust', 'none')}")
    target = None if prior is None else class_prior(prior, labels, columns=columns)
    kind = adjust
    method = fitted.method if fitted.method != "fixed" else "uniform"
    proba = fitted.predict_proba(valid_al.arrays)
    if adjust == "auto":
        if fitted.method == "fixed":
            raise EnsembleError(f"{flag('adjust', 'auto')} estimates the adjustment with a fitted method; give "
                                f"{flag('weights', '<method>')}, or {flag('adjust', 'prior')} / fit")
        kind, reason, estimates = select_adjustment([as_log_probs(a) for a in valid_al.arrays], y, method,
                                                    target=target, metric=metric,
                                                    full_proba=proba, store=store, **cv, **fit_kwargs)
        notice(log, "adjust auto -> %s", reason)
        provenance["adjust_auto"] = {"chosen": kind, "reason": reason, "candidates": {
            k: {"cross_validated": dict(e.scores), "unadjusted": dict(e.baseline), "gain": dict(e.gain),
                "interval": {m: list(v) for m, v in e.interval.items()}} for k, e in estimates.items()}}
    if adjust == "auto" and kind != "none":  # the estimate fitted it on all rows already, from these weights
        adj = replace(estimates[kind].adjustment, labels=tuple(labels))
    else:
        adj = AdjustMethod(kind, target, metric).fit(proba, y, labels=labels)
    if kind != "none":
        order = np.argsort(-np.abs(adj.offsets), kind="stable")
        shown = sorted(order[:8]) if len(labels) > 10 else range(len(labels))
        log.info("class-prior adjustment %s: offsets %s%s", kind, ", ".join(f"{labels[i]}={adj.offsets[i]:+.3f}" for i in shown),
                 f", and {len(labels) - len(shown)} smaller ones (all in the weights file)" if len(shown) < len(labels) else "")
    return replace(fitted, adjustment=adj.to_dict(), apparent=scores(adj.apply(proba), y) if kind != "none"
                   else fitted.apparent)


def _flag_one_class(test_proba: np.ndarray, y: np.ndarray, labels, fitted) -> None:
    """Warn when a fitted method or adjustment sends nearly every test row (90% or more) to one
    class that is far from that common on validation: a fit that went wrong."""
    adjusted = bool(fitted.adjustment) and fitted.adjustment.get("kind") != "none"
    if fitted.method in ("uniform", "fixed") and not adjusted:
        return  # nothing fitted: the members' own predictions (chance-level members are warned about)
    counts = np.bincount(test_proba.argmax(axis=1), minlength=len(labels))
    top = int(counts.argmax())
    share, valid_share = counts[top] / max(1, len(test_proba)), float(np.mean(y == top))
    if len(test_proba) >= 20 and share >= 0.9 and valid_share < 0.5:
        log.warning("the ensemble (%s) predicts %s for %.0f%% of the test rows, a class of %.0f%% of the validation "
                    "rows: check the weights and the class-prior adjustment before submitting",
                    fitted.method + ("" if not fitted.adjustment or fitted.adjustment.get("kind") == "none"
                                     else f" + {fitted.adjustment['kind']}"), labels[top], 100 * share,
                    100 * valid_share)
