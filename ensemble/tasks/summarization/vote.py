"""The summarization ensemble as a notebook calls it: members' cached candidates pooled per row,
each row's text chosen by minimum-Bayes-risk selection under member weights; a rule's weights
fitted on labelled rows; every rule estimated over rows, out of fold, against the best single
member.

Below them, the task's part of the CLI's ``ensemble vote`` (:meth:`~ensemble.tasks.base.Task.vote`):
the options checked, the rule fitted (``auto``: uniform unless a fitted rule's cross-validated gain
over uniform is sure) or given, and the submission and sidecar written as one set.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

import numpy as np

from ensemble.core.errors import EnsembleError
from ensemble.estimates.headline import VOTE_LOGGER, headline_of, say_headline
from ensemble.tasks import rules
from ensemble.tasks.summarization.estimate import (RULES, SummaryEstimate, SummaryFit, candidates_of, choose,
                                                   estimate_rules, fit_rule)
from ensemble.tasks.summarization.task import align_texts, metric_types, summary_submission

log = logging.getLogger(VOTE_LOGGER)  # the vote's lines, held until its headline is said

__all__ = ["mbr_summaries", "fit_summaries", "estimate_summaries", "check_options", "vote_settings", "vote",
           "rule_of", "choose_rule", "rouge_settings", "AUTO_RULES"]

# the fitted rules auto chooses among (uniform unless one's gain over uniform is sure)
AUTO_RULES = ("score", "select", "optimize")
# the weights a vote names, as this task's rules: acc and score weigh each member by its ROUGE
_RULES = {"uniform": "uniform", "acc": "score", "score": "score", "best": "best", "select": "select",
          "optimize": "optimize", "auto": "auto"}


def mbr_summaries(outputs: Sequence, weights=None, *, metric: str | None = None, tokenizer: str | None = None,
                  utility=None) -> list[str]:
    """Each row's summary, chosen by MBR from the members' pooled candidates.

    Parameters
    ----------
    outputs : sequence of Texts
        Each member's candidates over one split (the generation forward's output,
        :func:`~ensemble.workflows.predict.predict_forward` with ``"generation"``).
    weights : sequence of float or SummaryFit, optional
        One per member, equal by default; or a fit (:func:`fit_summaries`).
    metric, tokenizer
        The utility: ``metric``'s ROUGE F1 (``"rouge"``: R1 + R2 + RL) over ``tokenizer``'s tokens;
        default a fit's (what it was fitted with), else ``"rouge"`` on ``"morphemes"``. Others than
        a fit's are refused.
    utility : callable, optional
        ``utility(candidate, reference) -> float`` in place of ROUGE (any metric of two texts).

    Returns
    -------
    list of str
        In the first member's row order.
    """
    al = align_texts(outputs)
    if isinstance(weights, SummaryFit):
        if tuple(weights.members) != al.members:
            raise EnsembleError(f"the fit is of members {', '.join(weights.members)}, the outputs are of "
                                f"{', '.join(al.members)}; give the outputs of the members it was fitted on, in order")
        for name, given, fitted in (("metric", metric, weights.metric), ("tokenizer", tokenizer, weights.tokenizer)):
            if given is not None and given != fitted:
                raise EnsembleError(f"{name} {given!r}: the fit was fitted with {name} {fitted!r}; leave it out (the "
                                    "fit's is used), or refit")
        metric, tokenizer = weights.metric, weights.tokenizer
    lc = candidates_of(al, metric=metric or "rouge", tokenizer=tokenizer or "morphemes", utility=utility)
    if isinstance(weights, SummaryFit):
        method, w = weights.method, weights.weights
    else:
        method, w = "fixed", np.ones(len(outputs)) if weights is None else np.asarray(weights, dtype=np.float64)
        if w.shape != (len(outputs),) or not np.isfinite(w).all() or (w < 0).any() or w.sum() <= 0:
            raise EnsembleError(f"weights must be {len(outputs)} numbers >= 0, not all zero; got {list(np.ravel(w))}")
    return [lc.texts[i][c] for i, c in enumerate(choose(lc, method, w))]


def fit_summaries(outputs: Sequence, references: Sequence, method: str = "score", *, metric: str = "rouge",
                  tokenizer: str = "morphemes", aggregate: str = "mean", seed: int = 0) -> SummaryFit:
    """``method`` (uniform, score, best, select, optimize) fitted on labelled rows (the members' outputs
    and each row's reference, or references). Pass the result to :func:`mbr_summaries` with the
    test rows' outputs."""
    lc = candidates_of(align_texts(outputs), references, metric=metric, tokenizer=tokenizer, aggregate=aggregate)
    return fit_rule(lc, method, seed=seed)


def estimate_summaries(outputs: Sequence, references: Sequence, *, methods: Sequence[str] = RULES, folds=5,
                       metric: str = "rouge", tokenizer: str = "morphemes", aggregate: str = "mean", seed: int = 0,
                       confidence: float = 0.95) -> dict[str, SummaryEstimate]:
    """Every rule's ``metric`` estimated over the labelled rows, out of fold
    (:func:`~ensemble.tasks.summarization.estimate.estimate_rules`), with its gain over the best
    single member chosen out of fold and over uniform."""
    lc = candidates_of(align_texts(outputs), references, metric=metric, tokenizer=tokenizer, aggregate=aggregate)
    return estimate_rules(lc, methods, folds=folds, seed=seed, confidence=confidence)


# ---------------------------------------------------------------------- the CLI's vote (the task's hook)


def rule_of(spec: str) -> str:
    """The summarization rule a vote's ``--weights`` method names; others are refused."""
    from ensemble.core.errors import flag

    if spec not in _RULES:
        raise EnsembleError(f"{flag('weights', spec)} is not a rule of the summarization task; use one of auto, "
                            "uniform, score (each member by its ROUGE; acc says the same), best, select, optimize")
    return _RULES[spec]


def check_options(task, options, *, kind: str = "method") -> None:
    """The options a summarization vote or report takes, checked before any output is read: a
    classifier's or a column task's refused, ``metric`` a ROUGE one, no weights file."""
    from ensemble.core.errors import flag

    given = [f for f, on in (("adjust", options.get("adjust", "none") not in ("none", None)),
                             ("temperature", options.get("temperature")), ("calibrate", options.get("calibrate")),
                             ("clip", options.get("clip")), ("prior", options.get("prior") is not None),
                             ("threshold", options.get("threshold") not in (None, "global")),
                             ("proba", options.get("proba")),
                             ("acc_power", options.get("acc_power", 1.0) != 1.0),
                             ("adjust_metric", options.get("adjust_metric") not in (None, "accuracy"))) if on]
    if given:
        raise EnsembleError(f"{flag(given[0])} does not apply to summarization members (generations have no "
                            "probabilities to adjust, clip or threshold): drop it")
    if options.get("metric") not in (None, "accuracy"):  # "accuracy": the report's default, the competition's ROUGE
        metric_types(options["metric"])
    if options.get("combine") not in (None, "prob", "mbr"):
        raise EnsembleError(f"{flag('combine', options['combine'])} does not apply to summarization: members' "
                            "generations are combined by minimum-Bayes-risk selection (mbr); drop it")
    if kind == "method" and isinstance(options.get("weights"), str):
        rule_of(options["weights"])


def rouge_settings(columns, *splits) -> dict:
    """The ROUGE tokenizer and aggregation: the splits' (``rouge_tokenizer =``), else ``columns``',
    else morphemes and mean."""
    def said(key, default):
        for s in splits:
            if s is not None and getattr(s, key, None) is not None:
                return getattr(s, key)
        return (columns or {}).get(key) or default

    return {"tokenizer": said("rouge_tokenizer", "morphemes"), "aggregate": said("rouge_aggregate", "mean")}


def vote_settings(task, options, *, kind: str, data, train, columns, source, labels) -> dict:
    """The metric and seed; the ROUGE settings are the splits' (or ``columns``'), read in :func:`vote`."""
    metric = options.get("metric")
    metric = "rouge" if metric in (None, "accuracy") else str(metric)
    metric_types(metric)
    return {"metric": metric, "columns": dict(columns or {}), "seed": options.get("seed", 0)}


def vote(task, job):
    """The weights (fitted, chosen by ``auto``, fixed or uniform), the headline's estimate and the
    submission of a summarization vote."""
    rules.refuse_holdout(job.holdout, task.name)
    g, s, kind, spec = job.gathered, job.settings, job.kind, job.spec
    for split in (g.test_split, g.valid_split):
        if split is not None:
            task.check_texts(split)
    s = {**s, **rouge_settings(s["columns"], g.valid_split, g.test_split)}
    models = tuple(g.test_al.members)
    generate = dict(getattr(g.test_split, "generate", ()) or ())
    estimate = {}
    if kind == "file":
        fit = job.loaded
        _check_file(fit, spec, g, {"metric": s["metric"], "tokenizer": s["tokenizer"], "aggregate": s["aggregate"],
                                   "generate": generate})
    elif kind == "fixed" or (spec == "uniform" and g.y is None):
        w = np.asarray(spec, dtype=np.float64) if kind == "fixed" else np.ones(len(models))
        fit = SummaryFit("fixed" if kind == "fixed" else "uniform", w / w.sum(), models, s["metric"])
    else:
        if g.y is None:
            raise EnsembleError(f"{g.valid_split.path if g.valid_split is not None else 'the validation split'}: no "
                                f"reference summaries; --weights {spec} is fitted on them (--label names their "
                                "column), or use --weights uniform")
        fit, estimate = _fitted(g, rule_of(spec), s, job.cv.get("cv", 5), job.source)
    fit.tokenizer, fit.aggregate, fit.generate = s["tokenizer"], s["aggregate"], generate
    fit.meta = {**fit.meta, **g.provenance}
    return _write(task, job, fit, estimate, s)


def _check_file(fit: SummaryFit, path, g, said) -> None:
    """A weights file is reused only under the settings it was fitted with, and on the same
    generations of the validation rows (their cache entries: an edited generation_config.json,
    other generate settings, make others): else one line saying which, and refit."""
    was = {k: getattr(fit, k) for k in said}
    if was != said:
        key = next(k for k in said if was[k] != said[k])
        raise EnsembleError(f"{path}: fitted with {key} {was[key]!r}, this vote asks for {said[key]!r}; give the same "
                            "settings, or refit with --weights <method>")
    for name, info in (g.provenance.get("models") or {}).items():
        then = ((fit.meta.get("models") or {}).get(name) or {}).get("cache_keys", {}).get("valid")
        if then != info["cache_keys"].get("valid"):
            raise EnsembleError(f"{path}: stale: {name}'s generations on the validation rows are not the ones the "
                                "weights were fitted on (its generation_config.json or the generate settings changed); "
                                "refit with --weights <method>")


def _fitted(g, rule: str, s, folds=5, source=None) -> tuple[SummaryFit, dict]:
    """The rule fitted on the validation rows, or fold groups' out-of-fold training rows
    (``folds``: their fold per row, else K) (``auto``: uniform, or the fitted rule whose gain
    over uniform is sure), and the headline's cross-validated estimate."""
    from ensemble.core.notices import notice

    lc = candidates_of(g.valid_al, g.y.references, metric=s["metric"], tokenizer=s["tokenizer"],
                       aggregate=s["aggregate"], progress=True)
    methods = ["uniform", *AUTO_RULES] if rule == "auto" else [rule]
    estimates = estimate_rules(lc, methods, folds=folds, seed=s["seed"], apparent=rule != "auto")
    oof = not isinstance(folds, int)
    if rule == "auto":
        rule, reason = choose_rule(estimates, s["metric"], "out of fold" if oof else "cross-validated")
        notice(log, "auto -> %s", reason)
        g.provenance["auto"] = {"chosen": rule, "reason": reason, "candidates": {
            m: {"cross_validated": e.score, "gain_vs_uniform": e.vs_uniform,
                "gain_interval": list(e.vs_uniform_interval)} for m, e in estimates.items()}}
    e = estimates[rule]
    fit = fit_rule(lc, rule, seed=s["seed"])
    fit.apparent = e.apparent
    estimate = {"metric": s["metric"], "estimate": e.score, "low": e.interval[0], "high": e.interval[1],
                "of": "out-of-fold" if oof else "cross-validated"}
    if oof and source is not None and source.refits:  # the refits are submitted; no out-of-fold figure is of them
        from ensemble.estimates.headline import refits_note

        estimate["note"] = refits_note({grp: r.name for grp, r in source.refits.items()}, holdout=False)
    return fit, estimate


def choose_rule(estimates, metric: str, of: str = "cross-validated") -> tuple[str, str]:
    """``auto``'s rule (:func:`ensemble.tasks.rules.choose_rule`) among uniform and
    :data:`AUTO_RULES` (whatever else was estimated: the report and the vote choose among the
    same), ties to the earlier of them."""
    return rules.choose_rule({m: e for m, e in estimates.items() if m in ("uniform", *AUTO_RULES)}, metric, of,
                             AUTO_RULES)


def _write(task, job, fit: SummaryFit, estimate: dict, s):
    """The submission (``fname,summary``, in the sample's format) and its sidecar as one set."""
    g, o = job.gathered, job.output
    al = g.test_al
    lc = candidates_of(al, metric=s["metric"], tokenizer=s["tokenizer"], progress=True)
    chosen = choose(lc, fit.method, fit.weights)
    summaries = [lc.texts[i][c] for i, c in enumerate(chosen)]
    procedure = {"weights": str(job.spec) if job.kind != "fixed" else [float(v) for v in job.spec],
                 "metric": fit.metric, "rouge_tokenizer": s["tokenizer"], "rouge_aggregate": s["aggregate"],
                 "members": sorted(r.name for r in job.source.refs)}
    out, weights_path = job.paths(fit.method, procedure)
    split = g.test_split
    frame = summary_submission(al.ids, summaries, sample_submission=o.sample_submission,
                               id_column=split.id_column or "fname")
    chosen_from = [str(al.members[lc.member_of[i][c]]) for i, c in enumerate(chosen)]
    headline = headline_of(estimate, out, fit.method)
    sidecar = {"task": task.name, "method": fit.method,
               "weights_file": None if weights_path is None else str(Path(weights_path).resolve()),
               "weights": dict(zip(fit.members, map(float, fit.weights))),
               "chosen_from": {m: chosen_from.count(m) for m in al.members},
               "test": {"path": str(split.path.resolve()), "data_digest": split.digest, "rows": len(split)},
               **g.provenance, "procedure": procedure, "headline": headline}
    frame = job.save(frame, out, sidecar, fit, weights_path if job.kind == "method" else None)
    frame.attrs.update(path=str(out), weights=fit, headline=headline)
    say_headline(headline, out)
    log.info("wrote %s (%d rows; summarization, MBR over %d members' candidates)", out, len(frame), len(al.members))
    return frame
