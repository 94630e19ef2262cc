"""Soft voting over cached logits, the vote workflow: gather the members' logits (aligned by
:mod:`ensemble.core.combination`), fit or load weights, and write the submission.

numpy only at import; ``vote`` reads data with pandas and logits from the cache, and never
imports torch or transformers.
"""

from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from ensemble.averaging.provenance import model_notes
from ensemble.core.combination import Aligned, as_log_probs
from ensemble.core.errors import NAME_RULE, EnsembleError, cli_face, data_fix, flag, is_name, option
from ensemble.workflows.members import resolve_members

log = logging.getLogger(__name__)
from ensemble.core.options import WEIGHTS_EXPECTED, weights_kind
from ensemble.estimates.procedure import Procedure
from ensemble.workflows.gather import (
    CachedLogits,
    check_fold_groups,
    check_refit,
    open_split,
    source_of,
    training_of,
    with_training,
)
from ensemble.workflows.inputs import Inputs
from ensemble.workflows.render import headline_line
from ensemble.workflows.submission import free_name, refuse_other_procedure

__all__ = ['vote']




def _parse_weights(spec: str, models: Sequence[str]):
    """``spec`` is a method name, a weights file, or ``w1,w2,...``; returns (kind, value)."""
    expected = WEIGHTS_EXPECTED
    if isinstance(spec, os.PathLike):
        return "file", Path(spec)
    if isinstance(spec, (list, tuple, np.ndarray)) and not isinstance(spec, str):
        try:
            values = np.asarray(spec, dtype=np.float64).reshape(-1)
        except (TypeError, ValueError):
            raise EnsembleError(f"weights must be {expected} (or a sequence of numbers); got {spec!r}") from None
    elif not isinstance(spec, str):
        raise EnsembleError(f"weights must be {expected} (or a sequence of numbers); got {type(spec).__name__} {spec!r}")
    else:
        kind = weights_kind(spec)
        if kind == "method":
            return "method", spec
        if kind == "file":
            return "file", Path(spec)
        if kind == "unknown":
            raise EnsembleError(f"{flag('weights')} must be {expected}; got {spec!r}")
        values = np.array([float(v) for v in spec.split(",")])
    if len(values) != len(models):
        raise EnsembleError(f"got {len(values)} weights, {len(models)} models ({', '.join(models)}); "
                            f"give one weight per {'--model' if cli_face() else 'member'}, in order")
    from ensemble.io.weightsfile import check_weights

    check_weights(values, flag("weights"))  # before any file is read
    return "fixed", values


def vote(
    models: Mapping[str, str | os.PathLike] | Inputs,
    data: Mapping[str, object] | None = None,
    weights: str = "uniform",
    *,
    combine: str = "prob",
    valid: str = "valid",
    test: str = "test",
    cache_dir: str | os.PathLike | None = None,
    sample_submission: str | os.PathLike | None = None,
    out: str | os.PathLike | None = None,
    proba: bool = False,
    temperature: bool = False,
    calibrate: bool = False,
    acc_power: float = 1.0,
    name: str = "ensemble",
    weights_dir: str | os.PathLike = "weights",
    submissions_dir: str | os.PathLike = "submissions",
    columns: Mapping | None = None,
    seed: int = 0,
    adjust: str = "none",
    prior=None,
    adjust_metric: str = "accuracy",
    class_order: str | Sequence[str] | None = None,
    folds=None,
    fold_column: str | None = None,
    train: str = "train",
    refit: Mapping[str, str] | None = None,
    trained_on_valid: Sequence[str] = (),
    include_optimistic: bool = False,
    inference=None,
    force: bool = False,
    task: str | None = None,
    metric: str | None = None,
    threshold="global",
    clip: bool = False,
):
    """Combine the cached logits of several models and write the submission.

    Parameters
    ----------
    models : mapping of name to model folder, list of :class:`~ensemble.workflows.members.Member`, or Inputs
        As given to ``ensemble predict`` (``DIR@top3`` expands to a sweep's best trials); their
        logits must be cached. An :class:`~ensemble.workflows.inputs.Inputs` holds the members
        and every other input (data, columns, folds, refit, cache_dir, inference, class_order);
        those given here as well replace its own.
    data : mapping of split name to data file (or Split)
        Must hold ``test``; ``valid`` (labelled) when weights are fitted or checked. Not needed
        with an Inputs.
    weights : str, default "uniform"
        A method of :func:`~ensemble.combining.weighting.fit_weights` ("uniform", "acc", "optimize",
        "select", "stack"), fitted on ``valid`` and saved to ``weights_dir/<name>-<method>.json``;
        a weights file written before (checked against the current models and validation data);
        fixed weights "w1,w2,..." in the order of ``models``; or a
        :class:`~ensemble.estimates.procedure.Procedure` (``Procedure.of("optimize",
        temperature=True, adjust="fit")``): the fitting settings as one object, in place of
        ``combine``, ``temperature``, ``calibrate``, ``acc_power``, ``seed`` and the adjustment.
    combine : {"prob", "logit", "geometric", "vote"}, default "prob"
    cache_dir : path-like, optional
        The logit cache (default: ``.ensemble/cache`` beside ``ensemble.toml``, else here).
    sample_submission : path-like, optional
        The competition's sample: its columns, row order and label format are followed.
    out : path-like, optional
        Default ``submissions/<name>-<method>.csv``.
    proba : bool, default False
        Add one probability column per class.
    temperature, calibrate, acc_power, seed
        See :func:`~ensemble.combining.weighting.fit_weights`.
    columns : mapping, optional
        ``id``, ``text``, ``label``, ``encoding`` for reading the data files.
    adjust : {"none", "prior", "fit", "auto"}, default "none"
        Class-prior adjustment of the ensemble (:mod:`ensemble.estimates.adjustments`), fitted on ``valid``
        after the weights and saved with them. "prior": offsets log(prior / validation's
        prior); "fit": offsets maximising ``adjust_metric``; "auto": whichever has a sure
        cross-validated gain over none, else none.
    prior : str, path, mapping or sequence, optional
        The target class prior: a labelled data file (the training file), "uniform", or shares
        ("neg=0.7,pos=0.3"). Needed by "prior"; "fit" and the estimates weight rows by it.
    adjust_metric : {"accuracy", "macro_f1"}, default "accuracy"
    class_order : str ("a,b,c") or sequence of str, optional
        When the sample submission's label column holds integers: the class of each index.
        Default: the order every member's ``id2label`` agrees on; members that disagree are an
        error asking for it (never the order in which they happen to be listed).
    folds : path-like or Folds, optional
        The folds file of K-fold members (fold groups, ``runs/bert-fold{fold}``), read against
        ``data[train]``: weights, adjustments and their estimates are then fitted on the
        out-of-fold logits of every training row, cross-validated on these folds, and a fold
        group's test probabilities are the mean of its fold models'. Fold groups beside models
        are fitted on ``data[valid]`` instead, as their fold means.
    fold_column : str, optional
        The folds file's fold column (default: ``fold``, else ``kfold``).
    train : str, default "train"
        The split of ``data`` the folds split.
    refit : mapping of member name to fold group name, optional
        Full-data refits (``{"bert_full": "bert"}``): the member, a model trained on every
        training row, takes its fold group's place on the test split with the group's weight.
        The weights and their estimate are the fold groups'; the refit itself has no honest
        score. Recorded in the weights file and the sidecar.
    trained_on_valid : sequence of str
        Members trained on the validation rows. With a method (uniform, fitted or auto) they are
        left out of the vote, as :func:`~ensemble.workflows.report.report` leaves them out of its
        ensembles, and so are members chosen on those rows (a greedy soup or K searched on them):
        the submission is the ensemble the report describes. Fixed weights and weights files
        keep every member.
    include_optimistic : bool, default False
        Keep those members, and fit weights over them (as the report's ``include_optimistic``).
    inference : InferenceSettings or mapping, optional
        The inference settings whose cached logits are read (default: ``ensemble predict``'s
        defaults); recorded in the sidecar. An entry computed with other settings is never used.
    force : bool, default False
        Replace a submission of the same name that another procedure wrote (other weights,
        combine rule, adjustment or members, as its sidecar's ``procedure`` says). Without it
        the submission is written as ``<name>-<method>-2.csv`` (the next free name), and an
        ``out`` given by hand is refused. This function does not read ``ensemble.toml``: pass
        its settings.
    task : {"classification", "regression", "multi_label"}, optional
        The members' task, over the one their config.json suggests (default: detected).
    metric : str, optional
        Regression and multi-label: the primary metric weights are fitted and ``auto`` decides
        by (default: pearson for one target, mcrmse for several; f1_micro).
    threshold : "global", "per_label", float or sequence of floats, default "global"
        Multi-label: the decision threshold, fitted on the validation rows (one, or one per
        label), or given (each in (0, 1)).
    clip : bool, default False
        Regression: clip the ensemble's outputs to the training labels' range (``data[train]``,
        when labelled), else to the rows the weights are fitted on.

    Returns
    -------
    pandas.DataFrame
        The submission as written; ``.attrs`` holds the output path and the :class:`Weights`.
    """
    with _headline_first():
        return _vote(**locals())


def _vote(models, data, weights, *, combine, valid, test, cache_dir, sample_submission, out, proba, temperature,
          calibrate, acc_power, name, weights_dir, submissions_dir, columns, seed, adjust, prior, adjust_metric,
          class_order, folds, fold_column, train, refit, trained_on_valid, include_optimistic, inference, force,
          task, metric, threshold, clip):
    """:func:`vote`'s work, its arguments as given."""
    _check_data(models if isinstance(models, Inputs) else data, valid, test)
    if isinstance(weights, Procedure):  # the fitting settings as one object
        s = _procedure_settings(weights, adjust, prior)
        weights, adjust, adjust_metric, prior = s["weights"], s["adjust"], s["adjust_metric"], s["prior"]
        combine, temperature, calibrate = s.get("combine", combine), s.get("temperature", temperature), s.get(
            "calibrate", calibrate)
        acc_power, seed = s.get("acc_power", acc_power), s.get("seed", seed)
    inputs = Inputs.of(models, data, columns=columns, folds=folds, fold_column=fold_column, train=train, refit=refit,
                       cache_dir=cache_dir, inference=inference, class_order=class_order, task=task)
    columns, train = inputs.columns, inputs.train
    training = training_of(inputs)
    data = with_training(inputs.data, train, training)
    members, kind, spec, loaded = _arguments(inputs.members, data, weights, name, test, adjust, adjust_metric, prior,
                                             None if training is None else training.k, inputs.refit)
    source = source_of(inputs, training, members)
    cv, holdout = {}, None
    if check_fold_groups(source, training, valid if valid in data else None):
        # fitted and estimated on the OOF rows; a validation split beside them is a holdout, where auto chooses
        holdout = open_split(data[valid], valid, columns) if valid in data else None
        valid, cv = train, {"cv": training.folds.fold}
    if valid in data:  # read once, for the members left out below and for the fit
        data = {**data, valid: open_split(data[valid], valid, columns)}
    if kind == "method" and not include_optimistic:
        _leave_out_optimistic(source, data[valid] if valid in data else None, trained_on_valid)
    source.warn_duplicates()
    need_valid = kind == "file" or (kind == "method" and spec != "uniform")  # weights fitted on validation
    g = _gather(source, data, valid, test, columns, need_valid=need_valid, weights=weights)
    _fold_provenance(g, source, training, bool(cv), train, valid)
    if source.task.name != "classification":
        from ensemble.workflows.values import training_range

        given = [f for f, on in (("adjust", adjust != "none"), ("temperature", temperature), ("calibrate", calibrate))
                 if on]
        if given:
            raise EnsembleError(f"{flag(given[0])} is for classifiers' probabilities; these members are "
                                f"{source.task.name}: drop it")
        return _value_vote(g, source, kind, spec, loaded, cv, holdout, combine=combine, metric=metric,
                           threshold=threshold, clip=clip, seed=seed, name=name, out=out, weights_dir=weights_dir,
                           submissions_dir=submissions_dir, sample_submission=sample_submission, proba=proba,
                           force=force, label_sep=columns.get("label_sep"),
                           train_range=training_range(source, data, train, columns, g.test_al.labels, clip))
    if metric not in (None, "accuracy"):
        raise EnsembleError(f"{flag('metric', metric)} chooses among regression and multi-label metrics; a "
                            "classifiers' vote decides by accuracy (ensemble report --metric compares the others): "
                            "drop it")
    if isinstance(spec, str) and spec == "score":  # regression's and multi-label's name for acc
        spec = "acc"
    _check_validation(g, source.refs, fitted_method=kind == "method" and spec != "uniform", need_valid=need_valid,
                      weights=weights, adjust=adjust)
    fit_kwargs = dict(combine=combine, temperature=temperature, calibrate=calibrate, acc_power=acc_power, seed=seed,
                      names=[m.name for m in source.members])
    fitted = _weights(kind, spec, loaded, g, source, fit_kwargs, cv, holdout)
    if adjust != "none":
        fitted = _adjust(fitted, adjust, prior, adjust_metric, g.valid_al, g.y, g.valid_split, g.test_al.labels,
                         columns, g.provenance, fit_kwargs, store=source.estimates, cv=cv)
        g.estimate = _adjusted_estimate(g, fitted, bool(cv))
    _say_apparent(fitted, kind, adjust)
    test_proba = fitted.predict_proba(g.test_al.arrays)
    if g.y is not None:
        _flag_one_class(test_proba, g.y, g.test_al.labels, fitted)
    procedure = {"weights": str(spec) if kind != "fixed" else [float(v) for v in spec], "combine": combine,
                 "adjust": adjust, "temperature": temperature, "calibrate": calibrate,
                 "members": sorted(m.name for m in source.members)}
    return _write(fitted, test_proba, g, kind=kind, spec=spec, name=name, out=out, weights_dir=weights_dir,
                  submissions_dir=submissions_dir, sample_submission=sample_submission, proba=proba,
                  class_order=source.class_order, procedure=procedure, force=force)


def _fold_provenance(g: _Gathered, source: CachedLogits, training, oof: bool, train: str, valid: str) -> None:
    """What the outputs record of fold groups (fitted on their out-of-fold rows, or beside
    models on the validation rows as fold means) and of refits (said in the log too)."""
    if source.fold_groups:
        rows = ({**training.describe(), "kind": "out-of-fold", "split": train} if oof else
                {"kind": "validation", "split": valid, "fold_groups_as": "the mean of their fold models"})
        g.provenance["fitted_on"] = {**rows, "fold_groups": source.fold_group_folders()}
    if source.refits:
        g.provenance["refit"] = {group: {"model": r.name, "path": str(r.folder.resolve()),
                                         "model_digest": source.digest_of(r)} for group, r in source.refits.items()}
        log.info("refit: %s on the test split, with the weight of %s; the estimates are the fold groups' (a refit "
                 "has no honest score)", ", ".join(f"{r.name} takes the place of {g_}" for g_, r in source.refits.items()),
                 "its group" if len(source.refits) == 1 else "their groups")


class _HeadlineFirst(logging.Filter):
    """Holds the vote's info lines (auto's choice, the weights...) until its headline is said, so
    that the headline comes first; warnings pass at once. What is held is said in order when the
    headline is, or when the vote ends without one."""

    def __init__(self):
        super().__init__()
        self.held: list[logging.LogRecord] = []
        self.open = False

    def filter(self, record: logging.LogRecord) -> bool:
        if self.open or record.levelno >= logging.WARNING:
            return True
        if not getattr(record, "headline", False):
            self.held.append(record)
            return False
        self.release(first=record)
        return False

    def release(self, first: logging.LogRecord | None = None) -> None:
        self.open = True
        for record in ([first] if first is not None else []) + self.held:
            logging.getLogger(record.name).handle(record)
        self.held = []


# the loggers of the vote's own lines: this module's and the regression / multi-label path's
_VOTE_LOGGERS = (__name__, "ensemble.workflows.values")


@contextlib.contextmanager
def _headline_first():
    hold = _HeadlineFirst()
    loggers = [logging.getLogger(n) for n in _VOTE_LOGGERS]
    for lg in loggers:
        lg.addFilter(hold)
    try:
        yield
    finally:
        for lg in loggers:
            lg.removeFilter(hold)
        if not hold.open:
            hold.release()


def _procedure_settings(procedure: Procedure, adjust: str, prior) -> dict:
    """What a :class:`~ensemble.estimates.procedure.Procedure` given as ``weights`` sets: its
    method and options, and its adjustment (its target prior, when it has one)."""
    options = dict(procedure.weights.options)
    unknown = sorted(set(options) - {"combine", "temperature", "calibrate", "acc_power", "seed"})
    if unknown:
        raise EnsembleError(f"the procedure's option {unknown[0]!r} is not one vote takes (combine, temperature, "
                            "calibrate, acc_power, seed)")
    if adjust != "none" and adjust != procedure.adjust.kind:
        raise EnsembleError(f"adjust={adjust!r} and a procedure whose adjustment is {procedure.adjust.kind!r}; give one")
    target = procedure.adjust.target
    return {"weights": procedure.weights.method, "adjust": procedure.adjust.kind, "adjust_metric": procedure.adjust.metric,
            "prior": prior if target is None else [float(v) for v in target], **options}


def _check_data(data, valid: str, test: str) -> None:
    if not isinstance(data, (Mapping, Inputs)):
        raise EnsembleError(f"data must map split names to data files, e.g. {{'{valid}': 'data/valid.csv', '{test}': "
                            f"'data/test.csv'}}; got {type(data).__name__} {str(data)[:80]!r}")


def _say_apparent(fitted, kind: str, adjust: str) -> None:
    """The weights with their validation scores, and whether those are in-sample."""
    if not fitted.apparent:
        return
    log.info("%r", fitted)
    if kind == "method" and fitted.method != "uniform" or adjust != "none":
        log.info("validation scores of these weights are in-sample (fitted on the same rows): optimistic")
    else:
        log.info("validation scores of these weights: nothing was fitted on those rows")


def _leave_out_optimistic(source: CachedLogits, fitting_split, trained_on_valid) -> None:
    """Members whose scores on the fitting rows (``fitting_split``, None without one) are
    optimistic (trained on them, or a soup or K chosen on them) leave the vote, as they leave the
    report's ensembles; said in the log."""
    unknown = [n for n in trained_on_valid if n not in [r.name for r in source.refs]]
    if unknown:
        raise EnsembleError(f"trained_on_valid: {unknown[0]!r} is not a member ({', '.join(r.name for r in source.refs)})")
    digest = None if fitting_split is None else fitting_split.digest
    out = [r.name for r in source.refs
           if model_notes(r.parts[0].folder if r.kind == "folds" else r.folder, digest, r.name in trained_on_valid)[1]]
    if not out:
        return
    if len(out) == len(source.refs):
        raise EnsembleError("every member is marked optimistic (trained on or chosen on the validation rows); "
                            f"{option('include_optimistic')} to vote with them anyway")
    log.info("left out of the vote, as of the report's ensembles (optimistic validation scores: trained or chosen on "
             "those rows): %s; %s to keep them", ", ".join(out), option("include_optimistic"))
    source.leave_out(out)


@dataclass
class _Gathered:
    """What the vote reads: the splits, every member's aligned logits on them, the validation
    labels and the provenance written beside the outputs."""

    test_split: object
    valid_split: object | None
    test_al: Aligned
    valid_al: Aligned | None
    provenance: dict
    task: object
    estimate: dict = field(default_factory=dict)  # what the submission will score on unseen data (the headline)

    @property
    def y(self):
        return None if self.valid_al is None else self.valid_al.y


def _arguments(models, data, weights, name, test, adjust, adjust_metric, prior, k=None, refit: Mapping = {}):
    """Every argument checked before any file is read: (members, kind, spec, loaded weights file)."""
    from ensemble.combining.adjustment import check_adjust, needs_prior

    if not models:
        raise EnsembleError("no model given; " + ("pass --model NAME=PATH, once per model" if cli_face() else
                                                 "pass a mapping of member names to model folders"))
    if not is_name(name):  # it names the weights file and the submission: never a path
        raise EnsembleError(f"{flag('name', repr(name))}: must be {NAME_RULE} (outputs go to weights_dir and "
                            f"submissions_dir, or {flag('out')})")
    members = resolve_members(models, k)  # NAME=DIR@top3: the best checkpoints of a sweep's 3 best trials
    if test not in data:
        raise EnsembleError(f"no {test!r} split given; {data_fix(test)} with the test file")
    check_refit(members, refit)
    kind, spec = _parse_weights(weights, [m.name for m in members if m.name not in refit])  # a refit has its group's
    check_adjust(adjust, metric=adjust_metric, auto=True)
    if kind == "file" and adjust != "none":
        raise EnsembleError(f"{spec}: a weights file keeps the adjustment it was fitted with; {option('adjust', 'none')}, "
                            f"or refit with {flag('weights', '<method>')} and {flag('adjust', '...')}")
    if adjust == "prior" and prior is None:
        raise EnsembleError(needs_prior())
    loaded = _load_weights(spec) if kind == "file" else None  # every field checked before the logits are read
    return members, kind, spec, loaded


def _load_weights(path: Path):
    """A weights file: a classifier's Weights, or a regression / multi-label ValueWeights (by its
    ``format``)."""
    import json

    from ensemble.combining.weights import Weights

    try:
        fmt = json.loads(Path(path).read_text(encoding="utf-8")).get("format")
    except (OSError, ValueError, AttributeError):
        fmt = None  # Weights.load says what is wrong with it
    if fmt == "ensemble.value-weights/1":
        from ensemble.combining.values import ValueWeights

        return ValueWeights.load(path)
    return Weights.load(path)


def _gather(source: CachedLogits, data, valid: str, test: str, columns: dict, *, need_valid: bool,
            weights: str) -> _Gathered:
    """The test split and (when given) the validation split, every member's logits aligned on
    them in the test logits' class order, and their provenance."""
    test_split = open_split(data[test], test, columns)
    valid_split = None
    if valid in data:
        valid_split = open_split(data[valid], valid, columns)
    elif need_valid:
        raise EnsembleError(f"{flag('weights', weights)} needs the validation split; {data_fix(valid)} (labelled)")
    test_al = source.aligned(test_split, refit=True)
    valid_al = source.aligned(valid_split, test_al.labels) if valid_split is not None else None
    provenance = {
        "valid": None if valid_split is None else {"path": str(valid_split.path.resolve()), "data_digest": valid_split.digest,
                                                   "labels_digest": valid_split.labels_digest, "rows": len(valid_split)},
        "models": {r.name: {"path": str(r.folder.resolve()), "model_digest": source.digest_of(r),
                            "cache_keys": {"test": t.meta.get("key"),
                                           "valid": valid_al.logits[i].meta.get("key") if valid_al else None}}
                   for i, (r, t) in enumerate(zip(source.refs, test_al.logits))},
        # the settings asked for, and what each member's entry was computed with (fold means: their fold models')
        "inference": {"requested": source.inference.requested(),
                      "members": {r.name: t.meta.get("settings") for r, t in zip(source.refs, test_al.logits)}},
    }
    return _Gathered(test_split, valid_split, test_al, valid_al, provenance, source.task)


def _check_validation(g: _Gathered, refs, *, fitted_method: bool, need_valid: bool, weights: str, adjust: str) -> None:
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


def _weights(kind: str, spec, loaded, g: _Gathered, source: CachedLogits, fit_kwargs: dict, cv: Mapping = {},
             holdout=None):
    """The Weights to vote with: fitted on validation (a method, auto choosing it by a
    cross-validated estimate, or, for fold groups with a ``holdout`` split, by their scores
    there), fixed by hand, or a weights file checked against its inputs."""
    from ensemble.combining.weights import Weights
    from ensemble.core.scores import scores
    from ensemble.estimates.procedure import Procedure

    labels, y, names = g.test_al.labels, g.y, fit_kwargs["names"]
    if kind == "file":
        _check_stale(loaded, spec, source.refs, source.digest_of, g.valid_split, labels)
        _check_folds(loaded, spec, g.provenance.get("fitted_on"))
        return loaded
    if kind == "fixed":
        fixed = Weights("fixed", tuple(names), spec / spec.sum(), fit_kwargs["combine"], labels, meta=g.provenance)
        return fixed if y is None else replace(fixed, apparent=scores(fixed.predict_proba(g.valid_al.arrays), y))
    if spec != "uniform" and y is None:
        g.valid_split.require_labels(f"{flag('weights', spec)} is fitted on validation labels (or use "
                                     f"{flag('weights', 'uniform')})")
    estimates, decided = {}, {}  # auto's estimates, and the holdout's scores when it decided
    if spec == "auto":
        from ensemble.estimates.crossval import select_method

        # log-probabilities once for every estimate (their keys hash them, as the report's do)
        log_probs = [as_log_probs(a) for a in g.valid_al.arrays]
        spec, reason, estimates = select_method(log_probs, y, store=source.estimates, **cv, **fit_kwargs)
        decided = _on_holdout(holdout, source, g, estimates, fit_kwargs["combine"], (spec, reason))
        spec, reason = (decided["choice"], decided["reason"]) if decided else (spec, reason)
        log.info("auto -> %s", reason)
        g.provenance["auto"] = {"chosen": spec, "reason": reason, "candidates": {
            m: {"cross_validated": dict(e.cross_validated), "gain_vs_uniform": dict(e.gain_vs_uniform),
                "gain_interval": {k: list(v) for k, v in e.gain_interval.items()}, "mcnemar_p": e.mcnemar_p}
            for m, e in estimates.items()}}
        if decided:
            g.provenance["auto"]["holdout"] = {k: decided[k] for k in ("path", "rows", "metric", "scores", "decided_on",
                                                                       "oof_choice", "oof_reason", "overlap", "used_by")}
    g.estimate = _estimate_of(spec, g, fit_kwargs, cv, estimates, decided)
    if y is not None:
        fitted = Procedure.of(spec, **fit_kwargs).weights.fit(g.valid_al.arrays, y, names=names)
    else:
        fitted = Weights("uniform", tuple(names), np.full(len(names), 1 / len(names)), fit_kwargs["combine"], labels)
    return Weights(fitted.method, fitted.models, fitted.weights, fitted.combine, labels, fitted.temperatures,
                   fitted.calibration, fitted.stacker, fitted.apparent, {**fitted.meta, **g.provenance})


def _estimate_of(spec: str, g: _Gathered, fit_kwargs: dict, cv: Mapping, estimates: Mapping, decided: Mapping) -> dict:
    """What the submission of method ``spec`` will score on unseen data: its holdout score when
    the holdout decided, else its cross-validated (fold groups: out-of-fold) accuracy as ``auto``
    estimated it, with a Wilson interval; uniform's own score where nothing is fitted. A method
    given by hand is not estimated (a note says so). Empty without labels."""
    from ensemble.workflows.holdout import holdout_note

    y = g.y
    if y is None:
        return {}
    if decided:
        s = decided["scores"][spec + (" with refits" if decided["decided_on"] == "refits" else "")]
        note = holdout_note(decided)
        return {"metric": decided["metric"], "estimate": s["score"], "low": s["low"], "high": s["high"], "of": "holdout",
                **({"note": note} if note else {})}
    if spec == "uniform":
        from ensemble.core.combination import combine as combine_logits
        from ensemble.core.scores import accuracy

        value = accuracy(combine_logits(g.valid_al.arrays, None, fit_kwargs["combine"]), y)
    elif spec in estimates:
        value = estimates[spec].cross_validated["accuracy"]
    else:  # a method given by hand is not cross-validated here (vote stays a second's work)
        return {"metric": "accuracy", "note": f"{spec} is not estimated by vote: ensemble report (or weights=auto) "
                                             "cross-validates it"}
    return _accuracy_estimate(value, len(y), bool(cv))


def _accuracy_estimate(value: float, rows: int, oof: bool) -> dict:
    """An estimated accuracy as the headline gives it, with the Wilson interval of its rows."""
    from ensemble.estimates.resampling import wilson

    low, high = wilson(int(round(value * rows)), rows)
    return {"metric": "accuracy", "estimate": float(value), "low": low, "high": high,
            "of": "out-of-fold" if oof else "cross-validated"}


def _adjusted_estimate(g: _Gathered, fitted, oof: bool) -> dict:
    """The headline's estimate once a class-prior adjustment is applied: the cross-validated
    accuracy of the weights and the adjustment together when ``--adjust auto`` estimated it; else
    the weights' estimate, saying the adjustment is not in it."""
    kind = (fitted.adjustment or {}).get("kind", "none")
    if kind == "none" or not g.estimate:
        return g.estimate
    chosen = g.provenance.get("adjust_auto", {}).get("candidates", {}).get(kind)
    if chosen is None:
        return {**g.estimate, "note": f"the {kind} adjustment is not in this estimate (ensemble report estimates it)"}
    return _accuracy_estimate(chosen["cross_validated"]["accuracy"], len(g.y), oof)


def _on_holdout(holdout, source: CachedLogits, g: _Gathered, estimates, combine: str, oof_choice) -> dict:
    """With fold groups and a holdout: the candidates scored there as submitted, and the choice."""
    if holdout is None:
        return {}
    from ensemble.estimates.crossval import AUTO_METHODS
    from ensemble.workflows.holdout import score_holdout

    return score_holdout(source, holdout, g.test_al.labels, range(len(source.refs)), estimates, combine, AUTO_METHODS,
                         "accuracy", oof_choice)


def _write(fitted, test_proba: np.ndarray, g: _Gathered, *, kind: str, spec, name: str, out, weights_dir,
           submissions_dir, sample_submission, proba: bool, class_order, procedure: dict | None = None,
           force: bool = False):
    """The submission, the weights file (for a fitted method) and the sidecar, as one set: named
    after the method and adjustment; what this vote created is removed when the set fails."""
    labels = g.test_al.labels
    method = fitted.method
    adjusted = fitted.adjustment is not None and fitted.adjustment.get("kind") != "none" and kind != "file"
    if adjusted:
        method = f"{method}-{fitted.adjustment['kind']}"
    out, weights_path = _output_paths(kind, spec, name, method, out, weights_dir, submissions_dir, procedure, force)
    sidecar = {"weights_file": None if weights_path is None else str(weights_path.resolve()),
               "method": method, "combine": fitted.combine,
               "weights": {m: float(w) for m, w in zip(fitted.models, fitted.weights)},
               "adjustment": fitted.adjustment,
               "test": {"path": str(g.test_split.path.resolve()), "data_digest": g.test_split.digest,
                        "rows": len(g.test_split)},
               **g.provenance, "procedure": procedure,
               "headline": {"submission": out.name, "method": method, "metric": None, "estimate": None, "low": None,
                            "high": None, "of": None, **g.estimate}}
    frame = g.task.submission(g.test_split.ids, test_proba, labels, sample_submission=sample_submission,
                            proba_columns=proba, id_column=g.test_split.id_column or "id",
                            label_column=(g.valid_split.label_column if g.valid_split is not None else None) or "label",
                            class_order=class_order,
                            member_orders={lg.model: lg.labels for lg in g.test_al.logits},
                            text_columns=g.test_split.text_columns)
    frame = _save_set(frame, out, sidecar, fitted, weights_path if kind == "method" else None)
    frame.attrs.update(path=str(out), weights=fitted, headline=sidecar["headline"])
    if g.estimate.get("estimate") is not None:
        log.info("%s", headline_line({**sidecar["headline"], "submission": str(out)}), extra={"headline": True})
    log.info("wrote %s (%d rows; %s)", out, len(frame),
             class_counts(labels, np.bincount(test_proba.argmax(axis=1), minlength=len(labels))))
    return frame


def _value_vote(g: _Gathered, source: CachedLogits, kind: str, spec, loaded, cv, holdout, *, combine, metric,
                threshold, clip, seed, name, out, weights_dir, submissions_dir, sample_submission, proba, force,
                label_sep, train_range=None):
    """:func:`vote` for regression and multi-label members (:mod:`ensemble.workflows.values`)."""
    from ensemble.workflows.values import value_settings, value_vote

    settings = value_settings(source.task, len(g.test_al.labels), metric=metric, combine=combine, threshold=threshold,
                              clip=clip, train_range=train_range)
    if kind == "file":
        from ensemble.combining.values import ValueWeights

        if not isinstance(loaded, ValueWeights):
            raise EnsembleError(f"{spec}: weights of classifiers; these members are {source.task.name}: refit with "
                                f"{flag('weights', '<method>')}")
        _check_stale(loaded, spec, source.refs, source.digest_of, g.valid_split, g.test_al.labels)
        _check_folds(loaded, spec, g.provenance.get("fitted_on"))
    procedure = {"weights": str(spec) if kind != "fixed" else [float(v) for v in spec], "combine": settings["combine"],
                 "metric": settings["metric"], "threshold": _listed(settings["threshold"]), "clip": settings["clip"],
                 "members": sorted(m.name for m in source.members)}

    def write(fitted, combined, names, estimate):
        return _write_values(fitted, combined, names, estimate, g, kind=kind, spec=spec, name=name, out=out,
                             weights_dir=weights_dir, submissions_dir=submissions_dir,
                             sample_submission=sample_submission, proba=proba, procedure=procedure, force=force,
                             label_sep=label_sep)

    return value_vote(g, source, kind=kind, spec=loaded if kind == "file" else spec, cv=cv, holdout=holdout,
                      settings=settings, seed=seed, write=write)


def _listed(v):
    return v.tolist() if isinstance(v, np.ndarray) else list(v) if isinstance(v, (list, tuple)) else v


def _output_paths(kind: str, spec, name: str, method: str, out, weights_dir, submissions_dir, procedure, force: bool):
    """(the submission's path, the weights file's or None): ``out``, else ``<name>-<method>.csv``
    or the next free name when another procedure holds it (the weights file renamed beside it);
    a submission of another procedure at ``out`` is refused without ``force``."""
    weights_path = (Path(spec) if kind == "file" else Path(weights_dir) / f"{name}-{method}.json" if kind == "method"
                    else None)
    renamed = None if out is not None else free_name(Path(submissions_dir), f"{name}-{method}", procedure, force)
    out = Path(out) if out is not None else renamed
    refuse_other_procedure(out, procedure, force)
    if renamed is not None and kind == "method" and renamed.stem != f"{name}-{method}":
        weights_path = Path(weights_dir) / f"{out.stem}.json"  # beside its submission's new name
    return out, weights_path


def _save_set(frame, out: Path, sidecar: dict, fitted, weights_path: Path | None):
    """The submission, the weights file (``weights_path``: a fitted method's) and the sidecar, as
    one set; what this vote created is removed when the set cannot be completed."""
    from ensemble.workflows.submission import save_submission

    created: list[Path] = []

    def save_weights():  # between the CSV and its sidecar, which names the weights file
        if not weights_path.parent.exists():
            created.append(weights_path.parent)
        if not weights_path.exists():
            created.insert(0, weights_path)
        fitted.save(weights_path)

    try:
        return save_submission(frame, out, sidecar, then=save_weights if weights_path is not None else None)
    except BaseException:
        for path in created:
            if path.is_dir():
                try:
                    path.rmdir()
                except OSError:
                    pass
            else:
                path.unlink(missing_ok=True)
        raise


def _write_values(fitted, combined: np.ndarray, names, estimate: dict, g: _Gathered, *, kind, spec, name, out,
                  weights_dir, submissions_dir, sample_submission, proba, procedure, force, label_sep):
    """The regression or multi-label submission, its weights file and sidecar, as one set."""
    from ensemble.workflows.values import headline_of, say_headline

    method = fitted.method
    out, weights_path = _output_paths(kind, spec, name, method, out, weights_dir, submissions_dir, procedure, force)
    frame = g.task.submission(g.test_split.ids, combined, names, threshold=fitted.threshold,
                              sample_submission=sample_submission, proba_columns=proba,
                              id_column=g.test_split.id_column or "id", label_sep=label_sep)
    headline = headline_of(estimate, out, method)
    sidecar = {"task": g.task.name, "weights_file": None if weights_path is None else str(weights_path.resolve()),
               "method": method, "combine": fitted.combine, "weights": fitted.to_dict()["weights"],
               "threshold": _listed(fitted.threshold), "names": list(names),
               "test": {"path": str(g.test_split.path.resolve()), "data_digest": g.test_split.digest,
                        "rows": len(g.test_split)}, **g.provenance, "procedure": procedure, "headline": headline}
    frame = _save_set(frame, out, sidecar, fitted, weights_path if kind == "method" else None)
    frame.attrs.update(path=str(out), weights=fitted, headline=headline)
    say_headline(headline, out)
    log.info("wrote %s (%d rows; %s %s)", out, len(frame), g.task.name, ", ".join(map(str, names[:6])))
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
    from ensemble.estimates.adjustments import select_adjustment
    from ensemble.estimates.procedure import AdjustMethod

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
        log.info("adjust auto -> %s", reason)
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


def _check_folds(w, path: Path, fitted_on) -> None:
    """A weights file fitted on out-of-fold rows is reused only with the same folds, and one
    fitted on validation rows only without folds."""
    was = (w.meta.get("fitted_on") or {}).get("folds_digest")
    now = (fitted_on or {}).get("folds_digest")
    if was != now:
        what = ("were fitted on validation rows, not on out-of-fold rows" if was is None else
                "were fitted on other folds" if now is not None else
                f"were fitted on out-of-fold rows; pass the same {flag('folds')}")
        raise EnsembleError(f"{path}: stale: the weights {what}; refit with {flag('weights', '<method>')}")


def _check_stale(w, path: Path, refs, digest_of, valid_split, labels) -> None:
    names = [r.name for r in refs]
    if list(w.models) != names:
        raise EnsembleError(f"{path}: weights are for models {', '.join(w.models)} but {', '.join(names)} are given; "
                            f"give the same {'--model' if cli_face() else 'member'} names in the same order, or refit")
    for r in refs:
        recorded = w.meta.get("models", {}).get(r.name, {}).get("model_digest")
        if recorded is None:
            raise EnsembleError(f"{path}: records no model_digest for {r.name}, so it cannot be checked against the "
                                f"models; refit with {flag('weights', '<method>')}")
        if recorded != digest_of(r):
            raise EnsembleError(f"{path}: stale: model {r.name} ({r.folder}) changed since the weights were fitted; "
                                f"refit with {flag('weights', '<method>')}")
    valid = w.meta.get("valid") or {}
    if w.method not in ("uniform", "fixed") and not valid.get("data_digest"):
        raise EnsembleError(f"{path}: records no validation data digest, so it cannot be checked against the data it "
                            f"was fitted on; refit with {flag('weights', '<method>')}")
    if valid.get("data_digest") and (valid_split is None or valid_split.digest != valid["data_digest"]):
        what = "is not given" if valid_split is None else f"({valid_split.path}) differs from the one they were fitted on"
        raise EnsembleError(f"{path}: stale: the validation data {what}; pass the same validation data ({data_fix('valid', '...')}) or refit")
    if w.method not in ("uniform", "fixed") and not valid.get("labels_digest"):
        raise EnsembleError(f"{path}: records no digest of the validation labels it was fitted on; refit with "
                            f"{flag('weights', '<method>')}")
    if w.method not in ("uniform", "fixed") and valid.get("labels_digest") != valid_split.labels_digest:
        raise EnsembleError(f"{path}: stale: the labels of {valid_split.path} (or its label column) differ from the ones "
                            f"the weights were fitted on; refit with {flag('weights', '<method>')}")
    if w.labels and tuple(w.labels) != tuple(labels):
        raise EnsembleError(f"{path}: weights are for classes {', '.join(w.labels)} but the models have "
                            f"{', '.join(labels)}; refit")
