"""The entities ensemble as a notebook calls it: members' cached per-character (or per-word) tag
probabilities averaged with weights, spans decoded per row; a rule's weights (and O thresholds)
fitted on labelled rows; every rule estimated over rows against the best single member.

Below them, the task's part of the CLI's ``ensemble vote`` (:meth:`~ensemble.tasks.base.Task.vote`):
the options checked, the rule fitted (``auto``: uniform unless a fitted rule's cross-validated gain
over uniform is sure) or given, and the submission, weights file and sidecar written as one set.
"""

from __future__ import annotations

import logging
from typing import Sequence

import numpy as np

from ensemble.core.errors import EnsembleError
from ensemble.estimates.headline import VOTE_LOGGER, headline_of, say_headline
from ensemble.tasks import rules
from ensemble.tasks.entities.combination import align_units, decode_rows, mean_units
from ensemble.tasks.entities.estimate import EntityEstimate, estimate_methods
from ensemble.tasks.entities.fitting import METHODS, Fit, LabelledUnits, fit_rule, given_thresholds
from ensemble.tasks.entities.spans import Span, beta_of
from ensemble.tasks.entities.submission import entity_submission, unit_probabilities, write_unit_probabilities

log = logging.getLogger(VOTE_LOGGER)  # the vote's lines, held until its headline is said

__all__ = ["entity_spans", "entity_probabilities", "fit_entities", "estimate_entities", "check_options",
           "vote_settings", "vote", "rule_of", "o_threshold", "choose_rule", "split_texts"]


def _texts(texts: Sequence, n: int, offsets: np.ndarray) -> list:
    texts = list(texts)
    if len(texts) != n:
        raise EnsembleError(f"got {len(texts)} texts for {n} rows of outputs")
    lengths = np.diff(offsets)
    bad = [i for i, t in enumerate(texts) if len(t) != lengths[i]]
    if bad:
        unit = "characters" if isinstance(texts[bad[0]], str) else "words"
        raise EnsembleError(f"row {bad[0]}: its text has {len(texts[bad[0]])} {unit}, the outputs {lengths[bad[0]]}: "
                            "the texts are not the ones the members ran over")
    return texts


def _unpacked(al, weights, thresholds):
    """Weights and thresholds, read from a :class:`Fit` of the same members when one is given."""
    if not isinstance(weights, Fit):
        return weights, thresholds
    if weights.members and tuple(weights.members) != al.members:
        raise EnsembleError(f"the fit is of members {', '.join(weights.members)}, the outputs are of "
                            f"{', '.join(al.members)}; give the outputs of the members it was fitted on, in its order")
    if thresholds is not None:
        raise EnsembleError("thresholds are given twice: by the fit and by thresholds=; give one")
    return weights.weights, weights.thresholds


def entity_spans(outputs: Sequence, texts: Sequence[str] | None = None, weights=None, thresholds=None
                 ) -> list[list[Span]]:
    """Each row's entity spans from the members' weighted mean.

    Parameters
    ----------
    outputs : sequence of Ragged
        Each member's per-character tag probabilities over one split (the token forward's output,
        :func:`~ensemble.workflows.predict.predict_forward` with ``"tokens"``).
    texts : sequence of str, or of lists of words, optional
        The split's texts (or, for members run with ``words=``, its lists of words) in the first
        member's row order: spans are trimmed of whitespace (characters, or words that are
        whitespace) at their edges, and each row's length is checked against its outputs.
    weights : sequence of float or Fit, optional
        One per member, equal by default; or a :class:`~ensemble.tasks.entities.fitting.Fit`
        (:func:`fit_entities`), whose weights and O thresholds are used.
    thresholds : float or dict, optional
        The O threshold of every type or of some (``{type: number}``); see
        :func:`~ensemble.tasks.entities.projection.o_thresholds`.

    Returns
    -------
    list of list of (start, end, type)
        End exclusive, per row in the first member's row order.
    """
    al = align_units(outputs)
    weights, thresholds = _unpacked(al, weights, thresholds)
    if texts is not None:
        texts = _texts(texts, len(al.ids), al.offsets)
    return decode_rows(mean_units(al.values, weights), al.offsets, al.tags, texts, thresholds)


def entity_probabilities(outputs: Sequence, weights=None):
    """The members' weighted mean per unit (character or word) as a long table, a row per
    (id, position) and a column per tag (NaN where no member covers the unit): what ``--proba``
    writes beside the submission (:func:`~ensemble.tasks.entities.submission.write_unit_probabilities`).
    ``weights`` as :func:`entity_spans` takes them (a fit's thresholds change no probability)."""
    al = align_units(outputs)
    weights, _ = _unpacked(al, weights, None)
    return unit_probabilities(al.ids, mean_units(al.values, weights), al.offsets, al.tags)


def _labelled(outputs, texts, gold, metric) -> LabelledUnits:
    al = align_units(outputs)
    return LabelledUnits(al, _texts(texts, len(al.ids), al.offsets), gold, beta_of(metric))


def fit_entities(outputs: Sequence, texts: Sequence, gold: Sequence[Sequence[Span]], method: str = "f1", *,
                 thresholds=False, metric: str = "f1") -> Fit:
    """``method`` (:data:`~ensemble.tasks.entities.fitting.METHODS`) fitted on labelled rows (the
    members' outputs, the texts, or lists of words, and their gold spans): the members' weights
    and, with ``thresholds=True``, each type's O threshold (or, given as a number or ``{type:
    number}``, the weights fitted under those), by entity F-beta (``metric``: ``"f1"``,
    or ``"f5"`` as PII Data Detection scores; :func:`~ensemble.tasks.entities.spans.beta_of`).
    Pass the result to :func:`entity_spans` with the test rows' outputs."""
    return fit_rule(_labelled(outputs, texts, gold, metric), method, thresholds=thresholds)


def estimate_entities(outputs: Sequence, texts: Sequence, gold: Sequence[Sequence[Span]], *,
                      methods: Sequence[str] = METHODS, thresholds=False, folds: int = 5, metric: str = "f1",
                      n_resamples: int = 2000, seed: int = 0, confidence: float = 0.95) -> dict[str, EntityEstimate]:
    """Every rule's entity F-beta (``metric``, as :func:`fit_entities` reads it) estimated over
    the labelled rows, cross-validated (:func:`~ensemble.tasks.entities.estimate.estimate_methods`),
    with its gain over the best single member chosen out of fold."""
    return estimate_methods(_labelled(outputs, texts, gold, metric), methods, thresholds=thresholds, folds=folds,
                            n_resamples=n_resamples, seed=seed, confidence=confidence)


# ---------------------------------------------------------------------- the CLI's vote (the task's hook)

# the weights a vote names, as this task's rules: "acc" and "score" weight each member by its score
_RULES = {"acc": "f1", "score": "f1", "uniform": "uniform", "best": "best", "select": "select",
          "optimize": "optimize", "f1": "f1", "auto": "auto"}
# the fitted rules ``auto`` chooses among (uniform unless one's gain over uniform is sure)
AUTO_RULES = ("f1", "select", "optimize")


def rule_of(spec: str) -> str:
    """The entities rule a vote's ``--weights`` method names; ``stack`` and ``best<K>`` (K > 1)
    are refused: they are not rules of this task."""
    from ensemble.core.errors import flag

    if spec not in _RULES:
        raise EnsembleError(f"{flag('weights', spec)} is not a rule of the entities task; use one of auto, uniform, "
                            "acc (each member by its entity F-beta), best, select, optimize")
    return _RULES[spec]


def check_options(task, options, *, kind: str = "method") -> None:
    """The options an entities vote or report takes, checked before any output is read: a
    classifier's or a column task's refused, ``metric`` an entity F-beta, ``threshold`` the O
    threshold (per_label: fitted per type inside the folds; a number in (0, 1] for every type)."""
    from ensemble.core.errors import flag
    from ensemble.core.options import check_option

    given = [f for f, on in (("adjust", options.get("adjust", "none") not in ("none", None)),
                             ("temperature", options.get("temperature")), ("calibrate", options.get("calibrate")),
                             ("clip", options.get("clip")), ("prior", options.get("prior") is not None)) if on]
    if given:
        raise EnsembleError(f"{flag(given[0])} does not apply to entities members (it is for classifiers' or "
                            "regressors' outputs): drop it")
    check_option("adjust_metric", options.get("adjust_metric") or "accuracy")
    if options.get("adjust_metric") not in (None, "accuracy"):
        raise EnsembleError(f"{flag('adjust_metric', options['adjust_metric'])} is what a classifier's adjustment "
                            "maximises; entities have none: drop it")
    if options.get("acc_power", 1.0) != 1.0:
        raise EnsembleError(f"{flag('acc_power', options['acc_power'])} is for classifiers' acc weights; entities' acc "
                            "weighs each member by its entity F-beta as it is: drop it")
    if options.get("metric") not in (None, "accuracy"):  # "accuracy": the report's default, entity F1 here
        beta_of(options["metric"])
    if options.get("combine") not in (None, "prob", "mean"):
        raise EnsembleError(f"{flag('combine', options['combine'])} does not apply to entities: members' per-character "
                            "probabilities are averaged (mean); drop it")
    threshold = o_threshold(options.get("threshold"))
    if kind == "method" and isinstance(options.get("weights"), str):
        rule_of(options["weights"])
    if kind == "file" and threshold is not None:
        raise EnsembleError(f"{options.get('weights')}: a weights file keeps the O thresholds it was fitted with; drop "
                            f"{flag('threshold')}, or refit with {flag('weights', '<method>')}")


def o_threshold(value):
    """The ``threshold`` option as the O thresholds it asks for: None (plain argmax: the default,
    or "global"), "per_label" (one per type, fitted), or a number in (0, 1] for every type."""
    import numbers

    from ensemble.core.errors import flag

    if value is None or (isinstance(value, str) and value == "global"):
        return None
    if isinstance(value, str) and value == "per_label":
        return value
    try:
        v = float(value) if isinstance(value, (str, numbers.Real)) and not isinstance(value, bool) else None
    except ValueError:
        v = None
    if v is None or not 0 < v <= 1:
        raise EnsembleError(f"{flag('threshold', value)}: for entities the threshold is the probability of O under "
                            "which an entity tag wins: per_label (fitted per type), or a number in (0, 1]")
    return v


def vote_settings(task, options, *, kind: str, data, train, columns, source, labels) -> dict:
    metric = options.get("metric")
    metric = "f1" if metric in (None, "accuracy") else str(metric)
    return {"metric": metric, "beta": beta_of(metric), "threshold": o_threshold(options.get("threshold")),
            "seed": options.get("seed", 0)}


def split_texts(split, offsets) -> list:
    """``split``'s texts (or lists of words, for a split of pre-split words), each as long as its
    row of outputs (else they are not the rows the members ran over: an error naming the file and
    row)."""
    words = getattr(split, "words", None) is not None
    texts = split.word_lists() if words else ["" if t is None else str(t) for t in split.texts[0]]
    lengths = np.diff(offsets)
    unit = "words" if words else "characters"
    for i, t in enumerate(texts):
        if len(t) != lengths[i]:
            raise EnsembleError(f"{split.path}: row {i + 1} has {len(t)} {unit}, the members' outputs {lengths[i]}: "
                                "run ensemble predict on this file again" + ("" if words else
                                                                             " (or say --words for word lists)"))
    return texts


def vote(task, job):
    """The weights (fitted, chosen by ``auto``, fixed or read), the headline's estimate and the
    submission of an entities vote."""
    rules.refuse_holdout(job.holdout, task.name)
    g, s, kind, spec = job.gathered, job.settings, job.kind, job.spec
    for split in (g.test_split, g.valid_split):
        if split is not None:
            task.check_texts(split)
    models = tuple(r.name for r in job.source.refs)
    types = {t[2:] for t in g.test_al.tags if t != "O"}
    estimate, fit = {}, None
    if kind == "file":
        fit = job.loaded
        if tuple(fit.tags) != tuple(g.test_al.tags) or fit.metric != s["metric"]:
            raise EnsembleError(f"{spec}: fitted for tags {', '.join(fit.tags)} by {fit.metric}; these members tag "
                                f"{', '.join(g.test_al.tags)} scored by {s['metric']}: refit with --weights <method>")
    elif kind == "fixed" or (spec == "uniform" and g.y is None):
        w = np.asarray(spec, dtype=np.float64) if kind == "fixed" else np.ones(len(models))
        if s["threshold"] == "per_label":
            raise EnsembleError("--threshold per_label is fitted on labelled validation rows with a method; give "
                                "--weights <method>, or an O threshold number")
        fit = Fit("fixed" if kind == "fixed" else "uniform", w / w.sum(), given_thresholds(types, s["threshold"]),
                  models, s["metric"], g.test_al.tags)
    else:
        if g.y is None:
            raise EnsembleError(f"{g.valid_split.path if g.valid_split is not None else 'the validation split'}: no "
                                f"entities labelled; --weights {spec} is fitted on them (--label names their column), "
                                "or use --weights uniform")
        fit, estimate = _fitted(g, rule_of(spec), s, job.cv.get("cv", 5), job.source)
    fit.meta = {**fit.meta, **g.provenance}
    return _write(task, job, fit, estimate)


def _units(g, s) -> LabelledUnits:
    al = g.valid_al
    return LabelledUnits(al, split_texts(g.valid_split, al.offsets), al.y.spans, s["beta"])


def _fitted(g, rule: str, s, folds, source) -> tuple[Fit, dict]:
    """The rule fitted on the validation rows, or fold groups' out-of-fold training rows
    (``folds``: their fold per row, else K) (``auto``: uniform, or the fitted rule whose gain over
    uniform is sure), and the headline's cross-validated estimate."""
    from ensemble.core.notices import notice

    units = _units(g, s)
    limits = True if s["threshold"] == "per_label" else s["threshold"]  # fitted per type, given, or None
    methods = ["uniform", *AUTO_RULES] if rule == "auto" else [rule]
    estimates = estimate_methods(units, methods, thresholds=limits, seed=s["seed"], apparent=rule != "auto",
                                 folds=folds)
    oof = not isinstance(folds, int)
    if rule == "auto":
        rule, reason = choose_rule(estimates, s["metric"], "out of fold" if oof else "cross-validated")
        notice(log, "auto -> %s", reason)
        g.provenance["auto"] = {"chosen": rule, "reason": reason, "candidates": {
            m: {"cross_validated": e.f, "gain_vs_uniform": e.vs_uniform, "gain_interval": list(e.vs_uniform_interval)}
            for m, e in estimates.items()}}
    e = estimates[rule]
    fit = fit_rule(units, rule, thresholds=limits)
    fit = Fit(rule, fit.weights, fit.thresholds, fit.members, s["metric"], units.al.tags,
              {} if e.apparent is None else {s["metric"]: e.apparent})
    estimate = {"metric": s["metric"], "estimate": e.f, "low": e.interval[0], "high": e.interval[1],
                "of": "out-of-fold" if oof else "cross-validated"}
    if oof and source.refits:  # the refits are submitted; no out-of-fold figure is of them
        from ensemble.estimates.headline import refits_note

        estimate["note"] = refits_note({grp: r.name for grp, r in source.refits.items()}, holdout=False)
    return fit, estimate


def choose_rule(estimates, metric: str, of: str = "cross-validated") -> tuple[str, str]:
    """``auto``'s rule (:func:`ensemble.tasks.rules.choose_rule`) among uniform and
    :data:`AUTO_RULES` (whatever else was estimated: the report and the vote choose among the
    same), ties to the earlier rule of :data:`~ensemble.tasks.entities.fitting.METHODS`."""
    return rules.choose_rule({m: e for m, e in estimates.items() if m in ("uniform", *AUTO_RULES)}, metric, of,
                             METHODS)


def _write(task, job, fit: Fit, estimate: dict):
    """The submission (spans in the sample's format), its weights file and sidecar as one set;
    with ``--proba`` the per-character probabilities in Parquet beside it."""
    from pathlib import Path

    g, o = job.gathered, job.output
    al = g.test_al
    texts = split_texts(g.test_split, al.offsets)
    procedure = {"weights": str(job.spec) if job.kind != "fixed" else [float(v) for v in job.spec],
                 "metric": fit.metric, "threshold": job.settings["threshold"],
                 "members": sorted(r.name for r in job.source.refs)}
    out, weights_path = job.paths(fit.method, procedure)
    mean = mean_units(al.values, fit.weights)
    spans = decode_rows(mean, al.offsets, al.tags, texts, fit.thresholds)
    frame = entity_submission(al.ids, spans, texts, sample_submission=o.sample_submission,
                              id_column=g.test_split.id_column or "id")
    headline = headline_of(estimate, out, fit.method)
    sidecar = {"task": task.name, "weights_file": None if weights_path is None else str(Path(weights_path).resolve()),
               "method": fit.method, "weights": dict(zip(fit.members, map(float, fit.weights))),
               "thresholds": fit.thresholds, "tags": list(al.tags), "format": frame.attrs.get("format"),
               "test": {"path": str(g.test_split.path.resolve()), "data_digest": g.test_split.digest,
                        "rows": len(g.test_split)}, **g.provenance, "procedure": procedure, "headline": headline}
    proba_path = Path(out).with_suffix(".proba.parquet") if o.proba else None
    if proba_path is not None:
        sidecar["proba"] = str(proba_path.resolve())
    if proba_path is not None:  # before the set the sidecar names it in, removed if that set is not written
        write_unit_probabilities(proba_path, unit_probabilities(al.ids, mean, al.offsets, al.tags))
    try:
        frame = job.save(frame, out, sidecar, fit, weights_path if job.kind == "method" else None)
    except BaseException:
        if proba_path is not None:
            proba_path.unlink(missing_ok=True)
        raise
    frame.attrs.update(path=str(out), weights=fit, headline=headline)
    say_headline(headline, out)
    log.info("wrote %s (%d rows; entities, %s format)", out, len(frame), frame.attrs.get("format"))
    return frame
