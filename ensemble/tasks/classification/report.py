"""Classification's part of the report (:meth:`~ensemble.tasks.base.Task.report`): per-model and
per-ensemble quality side by side, with honest estimates.

For every model: validation accuracy, macro-F1, log loss and ECE, and a note when that score is
optimistic (a model trained on the validation rows, or an average whose checkpoints, K or soup
were chosen on them). For every ensemble method: the apparent scores (fitted and scored on all
validation rows), the cross-validated ones (:func:`~ensemble.tasks.classification.estimate.cross_validate`),
their difference, the gain over uniform averaging with its 95% interval and McNemar's p, and the
weights. Between models: how often they disagree, and how their errors correlate. Rendered by
:class:`~ensemble.tasks.classification.render.Report`.
"""

from __future__ import annotations

import logging

import numpy as np

from ensemble.averaging.provenance import model_notes
from ensemble.core.errors import EnsembleError, option
from ensemble.core.options import allowed
from ensemble.core.scores import CLASS_METRICS as _CLASS_METRICS
from ensemble.estimates.holdout import warn_overlap
from ensemble.estimates.resampling import wilson
from ensemble.tasks.classification.holdout import score_holdout
from ensemble.tasks.classification.render import Report, confused_pairs, reliability_curve

log = logging.getLogger(__name__)

__all__ = ["report"]


def report(job) -> Report:
    """:meth:`~ensemble.tasks.base.Task.report` for single-label classifiers."""
    o = job.options
    return _classification_report(job.source, job.al, job.split, job.training, job.data, job.valid, job.columns,
                                  methods=o.get("methods"), metric=o.get("metric", "accuracy"), cv=job.cv,
                                  repeats=o.get("repeats"), seed=o.get("seed", 0), combine=o.get("combine", "prob"),
                                  trained_on_valid=o.get("trained_on_valid", ()),
                                  include_optimistic=o.get("include_optimistic", False), best_k=o.get("best_k", 3),
                                  adjust=o.get("adjust", "auto"), prior=o.get("prior"),
                                  adjust_metric=o.get("adjust_metric"))


def _estimate_row(e, kind: str, arrays, y: np.ndarray, note: str) -> dict:
    """A table row of an ensemble method or a selection from its :class:`~ensemble.tasks.classification.estimate.Estimate`:
    apparent scores (ECE of the full fit), cross-validated ones, optimism and gain over uniform."""
    from ensemble.tasks.classification.estimate import ece

    lo, hi = e.gain_interval["accuracy"]
    cv_low, cv_high = wilson(int(round(e.cross_validated["accuracy"] * len(y))), len(y))
    return {"kind": kind, "accuracy": e.apparent["accuracy"], "macro_f1": e.apparent["macro_f1"], "cv_low": cv_low,
            "cv_high": cv_high,
            "log_loss": e.apparent["log_loss"], "ece": ece(e.weights.predict_proba(arrays), y),
            "cv_accuracy": e.cross_validated["accuracy"], "cv_macro_f1": e.cross_validated["macro_f1"],
            "cv_log_loss": e.cross_validated["log_loss"], "optimism": e.optimism["accuracy"],
            "gain": e.gain_vs_uniform["accuracy"], "gain_low": lo, "gain_high": hi, "mcnemar_p": e.mcnemar_p,
            "note": note}


def _classification_report(source, al, split, training, data, valid, columns, *, methods, metric, cv, repeats, seed,
                           combine, trained_on_valid, include_optimistic, best_k, adjust, prior, adjust_metric):
    """:func:`report` for single-label classifiers."""
    from ensemble.core.combination import as_log_probs
    from ensemble.core.combination import combine as combine_logits
    from ensemble.core.scores import need_classes
    from ensemble.tasks.classification.estimate import AUTO_METHODS, select_method
    from ensemble.tasks.classification.offsets import adjust_metric_for
    from ensemble.data.splits import open_split

    oof, refs = training is not None, source.refs
    y = al.y
    need_classes(y, "ensemble report", al.labels)
    # log-probabilities once for every member score, estimate and fit (the vote's estimates hash them too)
    log_probs = [as_log_probs(a) for a in al.arrays]
    rows, probas, excluded = _member_rows(refs, log_probs, split, y, trained_on_valid, include_optimistic, oof)
    fit_idx = [i for i, r in enumerate(refs) if r.name not in excluded]
    if not fit_idx:
        raise EnsembleError("every model is marked optimistic (trained on or chosen on the validation rows); "
                            f"{option('include_optimistic')} to fit weights over them anyway")
    fit_arrays = [log_probs[i] for i in fit_idx]
    fit_names = [refs[i].name for i in fit_idx]
    if excluded:
        log.info("left out of weight fitting (optimistic validation scores): %s", ", ".join(excluded))
    # the classifiers' metric that decides: a scikit-learn scorer's name is compared by auto alone
    decided_by = metric if metric in _CLASS_METRICS else "accuracy"
    # with fold groups, the training folds: each held-out fold is one fold model's rows
    cv = dict(cv=training.folds.fold if oof else cv, repeats=repeats, seed=seed, combine=combine, names=fit_names,
              store=source.estimates, member_metric=decided_by)
    methods = tuple(m for m in (methods or AUTO_METHODS) if m != "uniform")
    choice, reason, estimates = select_method(fit_arrays, y, methods, metric=metric, **cv)
    where = "out-of-fold" if oof else "validation"
    uniform = combine_logits(fit_arrays, None, combine)
    weights, reliability = _ensemble_rows(rows, probas, estimates, fit_arrays, fit_names, y, uniform, where)
    curse = _winners_curse(rows, estimates, fit_arrays, fit_names, probas, y, best_k, cv, where, decided_by)
    _primary_columns(rows, probas, estimates, uniform, y, decided_by)
    hsplit = open_split(data[valid], valid, columns) if oof and valid in data else None
    holdout = {} if hsplit is None else score_holdout(source, hsplit, al.labels, fit_idx, estimates, combine, methods,
                                                      decided_by, (choice, reason))
    if holdout:  # what is submitted, scored where no fit has been: the holdout decides
        choice, reason = holdout["choice"], holdout["reason"]
        warn_overlap(hsplit, training.split, holdout["overlap"], log)
    # an adjustment is fitted for accuracy or macro-F1: with another metric the vote refuses it, and
    # the report does not offer it
    offered = adjust != "none" and decided_by in allowed("adjust_metric")
    adjust_info = {} if not offered else _class_priors(
        fit_arrays, y, al.labels, choice, estimates, adjust=adjust, prior=prior, columns=columns,
        metric=adjust_metric_for(adjust_metric, metric), cv=cv)
    chosen = estimates[choice].oof_proba if choice in estimates else uniform
    confused = confused_pairs(chosen.argmax(axis=1), y, al.labels)
    table = _table(rows)
    names = [r.name for r in refs]
    disagreement, correlation = _between_members(probas, names, y)
    out_of_fold = {} if not oof else _out_of_fold(source, training, holdout, table, estimates, fold_mean=dict(
        data=data, columns=columns, labels=al.labels, fit_idx=fit_idx, choice=choice, fit_arrays=fit_arrays, y=y,
        combine=combine, member_probas=[probas[refs[i].name] for i in fit_idx]))
    return Report(table, disagreement, correlation, choice, reason, metric, len(y), excluded, estimates, reliability,
                  weights, curse, adjust_info, confused, out_of_fold, holdout, _inference(source, refs, al.logits))


_COLUMNS = ("cv_accuracy", "gain", "gain_low", "gain_high", "mcnemar_p", "acc_low", "acc_high", "cv_macro_f1",
            "cv_log_loss", "optimism", "cv_low", "cv_high")


def _table(rows):
    import pandas as pd

    table = pd.DataFrame.from_dict(rows, orient="index")
    for col in [c for c in _COLUMNS if c not in table]:  # in this order: the JSON's and the page's
        table[col] = float("nan")
    table["note"] = table["note"].fillna("")
    return table


def _out_of_fold(source, training, holdout: dict, table, estimates, fold_mean: dict) -> dict:
    """The rows and folds scored on; beside the holdout's figures, each row's out-of-fold one;
    without a holdout, the fold mean estimated from the out-of-fold and test rows, when the data
    holds a test split (:mod:`ensemble.tasks.classification.foldmean`)."""
    from ensemble.tasks.classification.foldmean import estimate_fold_mean
    from ensemble.data.splits import open_split

    out = {**training.describe(), "fold_groups": source.fold_group_folders(),
           "refit": {g: r.name for g, r in source.refits.items()}}
    if holdout:
        holdout["cv_accuracy"] = {n: float(table.loc[n, "cv_accuracy"] if n in estimates or n == "uniform" else
                                           table.loc[n, "accuracy"]) for n in holdout["accuracy"] if n in table.index}
    elif "test" in fold_mean["data"]:
        f = dict(fold_mean)
        test = open_split(f.pop("data")["test"], "test", f.pop("columns"))
        out["fold_mean"] = estimate_fold_mean(source, test, f.pop("labels"), f.pop("fit_idx"), f.pop("choice"),
                                              estimates, **f)
    return out


def _inference(source, refs, logits) -> dict:
    """The inference settings asked for, and what each member's cache entry was computed with."""
    return {"requested": source.inference.requested(),
            "members": {r.name: lg.meta.get("settings") for r, lg in zip(refs, logits)}}


def _member_rows(refs, log_probs, split, y, trained_on_valid, include_optimistic, oof: bool = False):
    """Each member's validation scores and note (rows), probabilities (from its log-probabilities
    over the validation rows), and the members left out of weight fitting because their scores
    there are optimistic."""
    from ensemble.core.combination import softmax
    from ensemble.core.scores import at_chance, log_loss, macro_f1
    from ensemble.tasks.classification.estimate import ece

    rows, probas, excluded = {}, {}, []
    for ref, arr in zip(refs, log_probs):
        group = ref.kind == "folds"  # its fold models' notes: their held-out rows are these
        note, exclude = model_notes(ref.parts[0].folder if group else ref.folder, split.digest,
                                    ref.name in trained_on_valid)
        if group and note:
            note = "fold models' " + (note.replace("this split", "each fold's held-out rows") if oof else note)
        if group and not oof:  # beside models, on the validation rows
            note = "; ".join(filter(None, [f"the mean of its {len(ref.parts)} fold models", note]))
        chance = at_chance(arr, y)
        if chance and oof:
            chance = chance.replace("on validation", "out of fold")
        if chance:
            log.warning("%s: %s", ref.name, chance)
            note = "; ".join(filter(None, [note, chance]))
        p = softmax(arr)
        probas[ref.name] = p
        k = int((p.argmax(axis=1) == y).sum())
        lo, hi = wilson(k, len(y))
        rows[ref.name] = {"kind": "model", "accuracy": k / len(y), "acc_low": lo, "acc_high": hi,
                          "macro_f1": macro_f1(p, y), "log_loss": log_loss(p, y), "ece": ece(p, y), "note": note,
                          # nothing fitted on these rows: its score is its estimate, unless it was trained or
                          # chosen on them (then the optimism is there, unmeasured)
                          "optimism": float("nan") if exclude else 0.0}
        if exclude and not include_optimistic:
            excluded.append(ref.name)
    return rows, probas, excluded


def _ensemble_rows(rows, probas, estimates, fit_arrays, fit_names, y, uniform, where: str = "validation"):
    """Uniform's row and each estimated method's (added to ``rows``); returns the weights of each
    method and the reliability curves of members and methods (``uniform``: its probabilities)."""
    from ensemble.core.scores import accuracy, log_loss, macro_f1
    from ensemble.tasks.classification.estimate import ece

    rows["uniform"] = {"kind": "ensemble", "accuracy": accuracy(uniform, y), "macro_f1": macro_f1(uniform, y),
                       "log_loss": log_loss(uniform, y), "ece": ece(uniform, y), "cv_accuracy": accuracy(uniform, y),
                       "optimism": 0.0, **dict(zip(("cv_low", "cv_high"), wilson(int(round(accuracy(uniform, y) * len(y))),
                                                                                 len(y)))), "gain": 0.0, "gain_low": 0.0, "gain_high": 0.0, "mcnemar_p": float("nan"),
                       "note": f"nothing fitted: its {where} score is an estimate"}
    weights = {"uniform": {n: 1 / len(fit_names) for n in fit_names}}
    reliability = {n: reliability_curve(p, y) for n, p in probas.items()}
    reliability["uniform"] = reliability_curve(uniform, y)
    for m, e in estimates.items():
        rows[m] = _estimate_row(e, "ensemble", fit_arrays, y, "")
        if e.weights.stacker is None:
            weights[m] = dict(zip(fit_names, map(float, e.weights.weights)))
        reliability[f"{m} (out-of-fold)"] = reliability_curve(e.oof_proba, y)
    return weights, reliability


def _winners_curse(rows, estimates, fit_arrays, fit_names, probas, y, best_k, cv, where: str = "validation",
                   metric: str = "accuracy") -> dict:
    """Picking the best member (and the best K) on validation by ``metric`` (one of the
    classifiers' own), estimated like any fit and scored in it; its rows and estimates are added
    to ``rows`` and ``estimates``."""
    from ensemble.tasks.classification.estimate import DEFAULT_METRICS, cross_validate, metric_value

    curse = {}
    if len(fit_arrays) < 2:
        return curse
    member_scores = [metric_value(metric, probas[n], y) for n in fit_names]
    picks = ["best"] + ([f"best{best_k}"] if best_k and len(fit_arrays) > best_k > 1 else [])
    for m in picks:
        e = cross_validate(fit_arrays, y, m, metrics=tuple(dict.fromkeys((metric, *DEFAULT_METRICS))), **cv)
        chosen = [n for n, w in zip(fit_names, e.weights.weights) if w > 0]
        rows[m] = _estimate_row(e, "selection", fit_arrays, y, "picks " + ", ".join(chosen) + f" on the {where} rows")
        estimates[m] = e
        if m == "best":
            curse.update(metric=metric, members=len(fit_names), best_member=chosen[0], apparent_best=e.apparent[metric],
                         cv_best=e.cross_validated[metric], members_mean=float(np.mean(member_scores)),
                         members_chosen_on_eval_set=any("eval metric" in rows[n]["note"] for n in fit_names))
        else:
            curse.update(k=best_k, apparent_best_k=e.apparent[metric], cv_best_k=e.cross_validated[metric])
    return curse


def _primary_columns(rows, probas, estimates, uniform, y, metric: str) -> None:
    """The primary metric's columns beside accuracy's, when it is another of the classifiers' own:
    each row's score in it (``<metric>``), the cross-validated one (``cv_<metric>``) with its
    interval (``cv_<metric>_low``/``_high``; models: ``<metric>_low``/``_high``, nothing being
    fitted on their rows), and each method's gain over uniform in it (``gain_<metric>``...)."""
    from ensemble.estimates.resampling import metric_interval
    from ensemble.tasks.classification.estimate import estimate_interval, metric_value

    if metric == "accuracy":
        return
    for name, r in rows.items():
        if r["kind"] == "model":
            r[metric] = metric_value(metric, probas[name], y)
            r[f"{metric}_low"], r[f"{metric}_high"] = metric_interval(metric, probas[name], y)
        elif name == "uniform":
            r[metric] = r[f"cv_{metric}"] = metric_value(metric, uniform, y)
            r[f"cv_{metric}_low"], r[f"cv_{metric}_high"] = estimate_interval(metric, r[metric], uniform, y)
            r[f"gain_{metric}"], r[f"gain_{metric}_low"], r[f"gain_{metric}_high"] = 0.0, 0.0, 0.0
        elif name in estimates:
            e = estimates[name]
            r[metric], r[f"cv_{metric}"] = e.apparent[metric], e.cross_validated[metric]
            r[f"cv_{metric}_low"], r[f"cv_{metric}_high"] = estimate_interval(metric, r[f"cv_{metric}"], e.oof_proba,
                                                                              y)
            r[f"gain_{metric}"] = e.gain_vs_uniform[metric]
            r[f"gain_{metric}_low"], r[f"gain_{metric}_high"] = e.gain_interval[metric]


def _class_priors(fit_arrays, y, labels, choice, estimates, *, adjust, prior, columns, metric, cv) -> dict:
    """The class-prior adjustments estimated on top of the chosen method, as the report shows them."""
    from ensemble.data.priors import class_prior
    from ensemble.tasks.classification.offset_choice import select_adjustment

    target = None if prior is None else class_prior(prior, labels, columns=columns)
    kinds = None if adjust == "auto" else (adjust,)
    a_choice, a_reason, a_est = select_adjustment(
        fit_arrays, y, choice, target=target, metric=metric, kinds=kinds, **cv,
        full_proba=estimates[choice].weights.predict_proba(fit_arrays) if choice in estimates else None)
    first = next(iter(a_est.values()))
    counts = np.bincount(y, minlength=len(labels))
    return {
        "method": choice, "metric": metric, "choice": a_choice, "reason": a_reason, "classes": list(labels),
        "validation_prior": (counts / counts.sum()).tolist(),
        "target_prior": None if target is None else target.tolist(),
        "baseline": dict(first.baseline), "recall_before": first.recall_before.tolist(),
        "kinds": {k: {"scores": dict(e.scores), "gain": dict(e.gain),
                      "interval": {m: list(v) for m, v in e.interval.items()}, "recall": e.recall.tolist(),
                      "offsets": e.adjustment.offsets.tolist()} for k, e in a_est.items()},
    }


def _between_members(probas, names, y):
    """How often the members' predicted classes differ, and how their errors correlate."""
    import pandas as pd

    preds = np.stack([probas[n].argmax(axis=1) for n in names])
    errors = (preds != y).astype(float)
    M = len(names)
    dis = np.array([[float(np.mean(preds[i] != preds[j])) for j in range(M)] for i in range(M)])
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = np.corrcoef(errors) if M > 1 else np.ones((1, 1))
    corr = np.atleast_2d(np.nan_to_num(corr, nan=0.0))
    return pd.DataFrame(dis, index=names, columns=names), pd.DataFrame(corr, index=names, columns=names)
