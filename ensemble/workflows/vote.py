"""The vote workflow, the same for every task: the inputs and the weights argument checked, the
members' cached outputs gathered and aligned on the fitting and test splits, the members whose
scores there are optimistic left out, a weights file checked against what it was fitted on; then
the members' task (:meth:`~ensemble.tasks.base.Task.vote`) fits or loads its weights, says what
the submission will score, and writes it through :func:`_output_paths` and :func:`_save_set`.

numpy only at import; ``vote`` reads data with pandas and outputs from the cache, and never
imports torch or transformers.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from ensemble.averaging.provenance import optimistic_members
from ensemble.core.combination import Aligned
from ensemble.core.errors import NAME_RULE, EnsembleError, cli_face, data_fix, flag, is_name, option
from ensemble.core.notices import notice
from ensemble.core.options import DEFAULT_WEIGHTS, WEIGHTS_EXPECTED, weights_kind
from ensemble.data.splits import open_split
from ensemble.estimates.headline import VOTE_LOGGER
from ensemble.tasks import DEFAULT_TASK, TASKS
from ensemble.tasks.base import Output, VoteJob
from ensemble.workflows.gather import CachedOutputs, check_fold_groups, check_refit, source_of, training_of, with_training
from ensemble.workflows.inputs import Inputs
from ensemble.workflows.members import resolve_members
from ensemble.workflows.submission import free_name, kept_weights_path, refuse_other_procedure

log = logging.getLogger(VOTE_LOGGER)  # the vote's lines, whichever task says them: held until the headline

__all__ = ['vote', 'vote_inputs']


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
    weights: str = DEFAULT_WEIGHTS,
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
    adjust_metric: str | None = None,
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
    outputs: Mapping[str, Sequence[str]] | None = None,
    check_shift: bool = True,
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
    weights : str, default "auto"
        "auto" (:data:`~ensemble.core.options.DEFAULT_WEIGHTS`, as for ``ensemble vote`` and
        ``ensemble run``): a fitted method only when its estimated gain over uniform is sure, else
        uniform (and uniform where no labelled validation rows can decide). A method of :func:`~ensemble.tasks.classification.weighting.fit_weights` ("uniform", "acc", "optimize",
        "select", "stack"), fitted on ``valid`` and saved to ``weights_dir/<name>-<method>.json``;
        a weights file written before (checked against the current models and validation data);
        fixed weights "w1,w2,..." in the order of ``models``; or the task's settings as one
        object, a classifier's :class:`~ensemble.tasks.classification.procedure.Procedure` (``Procedure.of("optimize",
        temperature=True, adjust="fit")``): the fitting settings as one object, in place of
        ``combine``, ``temperature``, ``calibrate``, ``acc_power``, ``seed`` and the adjustment.
    combine : {"prob", "logit", "geometric", "vote", "rank"}, default "prob"
        Classifiers: see :func:`~ensemble.core.combination.combine`; "rank" (a rank average, for
        members calibrated differently) with ``metric="roc_auc"`` only.
    cache_dir : path-like, optional
        The logit cache (default: ``.ensemble/cache`` beside ``ensemble.toml``, else here).
    sample_submission : path-like, optional
        The competition's sample: its columns, row order and label format are followed.
    out : path-like, optional
        Default ``submissions/<name>-<method>.csv``.
    proba : bool, default False
        Add one probability column per class.
    temperature, calibrate, acc_power, seed
        See :func:`~ensemble.tasks.classification.weighting.fit_weights`.
    columns : mapping, optional
        ``id``, ``text``, ``label``, ``encoding`` for reading the data files.
    adjust : {"none", "prior", "fit", "auto"}, default "none"
        Class-prior adjustment of the ensemble (:mod:`ensemble.tasks.classification.offset_choice`), fitted on ``valid``
        after the weights and saved with them. "prior": offsets log(prior / validation's
        prior); "fit": offsets maximising ``adjust_metric``; "auto": whichever has a sure
        cross-validated gain over none, else none.
    prior : str, path, mapping or sequence, optional
        The target class prior: a labelled data file (the training file), "uniform", or shares
        ("neg=0.7,pos=0.3"). Needed by "prior"; "fit" and the estimates weight rows by it.
    adjust_metric : {"accuracy", "macro_f1"}, optional
        Default: ``metric`` when it is one of these, else accuracy.
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
    force : bool or sequence of path-like, default False
        Replace a submission of the same name that another procedure wrote (other weights,
        combine rule, adjustment or members, as its sidecar's ``procedure`` says); a sequence:
        only those submissions (``ensemble run`` passes the one it wrote last). Without it the
        submission is written as ``<name>-<method>-2.csv`` (the next free name), and an ``out``
        given by hand is refused. A fitted method's weights file is never one that another
        submission's sidecar names (``<stem>-2.json`` then). This function does not read ``ensemble.toml``: pass
        its settings.
    task : {"classification", "regression", "multi_label"}, optional
        The members' task, over the one their config.json suggests (default: detected).
    metric : str, optional
        The competition's metric: what ``auto`` decides by, the headline and its interval are in,
        and the holdout chooses by. Classifiers: accuracy (default), macro_f1, log_loss, roc_auc
        (two classes: of the second class; more: one-vs-rest) or qwk (quadratic weighted kappa,
        the classes ordinal in the members' label order); "acc" and "best" weights score each
        member by it. Regression and multi-label: the metric weights are fitted by too (default:
        pearson for one target, mcrmse for several; f1_micro).
    threshold : "global", "per_label", float or sequence of floats, default "global"
        Multi-label: the decision threshold, fitted on the validation rows (one, or one per
        label), or given (each in (0, 1)).
    clip : bool, default False
        Regression: clip the ensemble's outputs to the training labels' range (``data[train]``,
        when labelled), else to the rows the weights are fitted on.
    outputs : mapping of member name to sequence of str, optional
        Regression and multi-label: the label column of each of a member's outputs, in its head's
        order, for a member whose head does not name them (``id2label`` is ``LABEL_0``...): said
        once, checked against the head and the label columns. Without it such a member with
        several outputs is an error (matched by position, reordering the label columns would
        move each output to another target).
    check_shift : bool, default True
        Check that the test rows look like the rows the headline is estimated on: the members'
        outputs on them, and their texts as a :func:`~ensemble.workflows.report.report` of these
        splits checked them (:func:`~ensemble.estimates.shift.check_shift`); when they do not,
        the headline says so. Recorded in the sidecar's ``shift``.

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
          task, metric, threshold, clip, outputs, check_shift):
    """:func:`vote`'s arguments as the three things a vote is: its inputs, the task's settings (from
    the options as given) and where it writes."""
    _check_data(models if isinstance(models, Inputs) else data, valid, test)
    options = dict(combine=combine, temperature=temperature, calibrate=calibrate, acc_power=acc_power, seed=seed,
                   adjust=adjust, prior=prior, adjust_metric=adjust_metric, metric=metric, threshold=threshold,
                   clip=clip)
    inputs = Inputs.of(models, data, columns=columns, folds=folds, fold_column=fold_column, train=train, refit=refit,
                       cache_dir=cache_dir, inference=inference, class_order=class_order, task=task, outputs=outputs)
    output = Output(name, out, weights_dir, submissions_dir, sample_submission, proba, force)
    return vote_inputs(inputs, weights, options, output, valid=valid, test=test, trained_on_valid=trained_on_valid,
                       include_optimistic=include_optimistic, check_shift=check_shift)


def vote_inputs(inputs: Inputs, weights, options: Mapping, output: Output, *, valid: str = "valid",
                test: str = "test", trained_on_valid: Sequence[str] = (), include_optimistic: bool = False,
                check_shift: bool = True):
    """The vote of ``inputs`` with ``weights`` (a method, a weights file or fixed weights) and the
    task's ``options`` (:meth:`~ensemble.tasks.base.Task.vote_settings`), written to ``output``."""
    if hasattr(weights, "vote_options"):  # the task's settings as one object (a classifier's Procedure)
        options = {**options, **weights.vote_options(options.get("adjust", "none"), options.get("prior"))}
        weights = options.pop("weights")
    columns, train = inputs.columns, inputs.train
    training = training_of(inputs)
    data = with_training(inputs.data, train, training)
    members, kind, spec, loaded = _arguments(inputs.members, data, weights, output.name, test,
                                             None if training is None else training.k, inputs.refit)
    source = source_of(inputs, training, members)
    source.task.check_options({**options, "weights": spec, "proba": output.proba}, kind=kind)  # an option of another task refused before any output is read
    cv, holdout = {}, None
    if check_fold_groups(source, training, valid if valid in data else None):
        # fitted and estimated on the OOF rows; a validation split beside them is a holdout, where auto chooses
        holdout = open_split(data[valid], valid, columns) if valid in data else None
        valid, cv = train, {"cv": training.folds.fold}
    if valid in data:  # read once, for the members left out below and for the fit
        data = {**data, valid: open_split(data[valid], valid, columns)}
    if kind == "method" and spec == "auto" and (valid not in data or data[valid].labels is None):
        # the default: nothing to choose on, so nothing is fitted
        notice(log, "auto -> uniform: no labelled validation rows to choose a fitted method on")
        spec = "uniform"
    if kind == "method" and not include_optimistic:
        _leave_out_optimistic(source, data[valid] if valid in data else None, trained_on_valid)
    source.warn_duplicates()
    need_valid = kind == "file" or (kind == "method" and spec != "uniform")  # weights fitted on validation
    g = _gather(source, data, valid, test, columns, need_valid=need_valid, weights=weights)
    _fold_provenance(g, source, training, bool(cv), train, valid)
    settings = source.task.vote_settings({**options, "weights": weights, "need_valid": need_valid}, kind=kind,
                                         data=data, train=train, columns=columns, source=source,
                                         labels=g.test_al.labels)
    if kind == "file":
        _check_file(loaded, spec, source, g)
    if check_shift and (holdout is not None or g.valid_split is not None):
        g.shift_check = functools.partial(_shift, source, g, holdout, bool(cv))

    def paths(method: str, procedure: Mapping):
        return _output_paths(kind, spec, output.name, method, output.out, output.weights_dir, output.submissions_dir,
                             procedure, output.force)

    pointed = _points(output)
    frame = source.task.vote(VoteJob(g, source, kind, spec, loaded[1] if loaded else None, cv, holdout, settings,
                                     output, paths, functools.partial(_save_set, pointer=pointed)))
    if pointed:
        from ensemble.workflows.submission import LATEST

        notice(log, "%s points at %s: the file to submit", Path(frame.attrs["path"]).parent / LATEST,
                 Path(frame.attrs["path"]).name)
    return frame


def _points(output: Output) -> bool:
    """Whether the vote points ``latest.json`` at its submission: named in the submissions folder,
    or an ``out`` given there (or beside a pointer already), so that the pointer never names an
    older file than the last vote wrote there."""
    from ensemble.workflows.submission import LATEST

    if output.out is None:
        return True
    folder = Path(output.out).resolve().parent
    return folder == Path(output.submissions_dir).resolve() or (folder / LATEST).exists()


def _shift(source: CachedOutputs, g: "_Gathered", holdout, oof: bool, of: str | None) -> dict | None:
    """The members' outputs on the test rows against the rows the headline's figure is ``of``:
    the holdout when it decided, else the rows fitted on (out of fold for fold groups); the texts
    as a report of the same splits checked them (a vote imports no scikit-learn). The members
    compared are the vote's (those left out as optimistic are not)."""
    from ensemble.estimates.shift import check_shift

    if of == "holdout" and holdout is not None:
        return check_shift(source, holdout, g.test_split, texts=False)
    if g.valid_split is None:
        return None
    same = not oof and not source.refits  # the test outputs read already are the members' own
    return check_shift(source, g.valid_split, g.test_split, g.valid_al, oof=oof, texts=False,
                       test_al=g.test_al if same else None)


def _check_file(loaded, path: Path, source: CachedOutputs, g) -> None:
    """A weights file is reused only by members of the task that wrote it, with the same models,
    validation data and folds."""
    reader, w = loaded
    if not source.task.owns_weights(w):
        raise EnsembleError(f"{path}: weights of {reader.members_noun}; these members are {source.task.name}: refit "
                            f"with {flag('weights', '<method>')}")
    _check_stale(w, path, source.refs, source.digest_of, g.valid_split, g.test_al.labels, source.applied)
    _check_folds(w, path, g.provenance.get("fitted_on"))


def _fold_provenance(g: _Gathered, source: CachedOutputs, training, oof: bool, train: str, valid: str) -> None:
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


@contextlib.contextmanager
def _headline_first():
    """The vote's lines (every task's part logs to :data:`~ensemble.estimates.headline.VOTE_LOGGER`)
    held until its headline is said."""
    hold = _HeadlineFirst()
    log.addFilter(hold)
    try:
        yield
    finally:
        log.removeFilter(hold)
        if not hold.open:
            hold.release()


def _check_data(data, valid: str, test: str) -> None:
    if not isinstance(data, (Mapping, Inputs)):
        raise EnsembleError(f"data must map split names to data files, e.g. {{'{valid}': 'data/valid.csv', '{test}': "
                            f"'data/test.csv'}}; got {type(data).__name__} {str(data)[:80]!r}")


def _leave_out_optimistic(source: CachedOutputs, fitting_split, trained_on_valid) -> None:
    """Members whose scores on the fitting rows (``fitting_split``, None without one) are
    optimistic (trained on them, or a soup or K chosen on them) leave the vote, as they leave the
    report's ensembles; said in the log."""
    unknown = [n for n in trained_on_valid if n not in [r.name for r in source.refs]]
    if unknown:
        raise EnsembleError(f"trained_on_valid: {unknown[0]!r} is not a member ({', '.join(r.name for r in source.refs)})")
    out = list(optimistic_members(source.refs, None if fitting_split is None else fitting_split.digest,
                                  trained_on_valid))
    if not out:
        return
    if len(out) == len(source.refs):
        raise EnsembleError("every member is marked optimistic (trained on or chosen on the validation rows); "
                            f"{option('include_optimistic')} to vote with them anyway")
    notice(log, "left out of the vote, as of the report's ensembles (optimistic validation scores: trained or chosen on "
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
    shift: dict | None = None  # the checks of the test rows against the rows it is estimated on (estimates.shift)
    shift_check: object = None  # shift_check(of) -> that dict, for the rows the headline's figure is of

    def shift_for(self, of: str | None) -> dict | None:
        """The shift checks against the rows the headline's figure is ``of`` (the holdout, or the
        rows fitted on), recorded in ``shift``; None when the vote does not check."""
        if self.shift_check is not None:
            self.shift = self.shift_check(of)
        return self.shift

    @property
    def y(self):
        return None if self.valid_al is None else self.valid_al.y

    def drop_refits(self, source, decided: Mapping) -> None:
        """The holdout chose the fold means over the refits (``decided``: its decision): the test rows
        are voted on by the fold groups' means after all, the provenance marks each refit unused,
        and the vote says so. Every task's holdout decision calls it."""
        self.test_al = source.aligned(self.test_split, self.test_al.labels, refit=False)
        self.provenance["refit"] = {g: {**info, "used": False} for g, info in (self.provenance.get("refit") or {}).items()}
        log.warning("the holdout chose the fold means over the refits (%s: refits %+.4f in %s there): the refits are "
                    "not submitted", decided["choice"], decided.get("refits_gain", float("nan")), decided["metric"])


def _arguments(models, data, weights, name, test, k=None, refit: Mapping = {}):
    """Every argument checked before any file is read: (members, kind, spec, (the task that read
    the weights file, the weights) or None)."""
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
    loaded = _load_weights(spec) if kind == "file" else None  # every field checked before the logits are read
    return members, kind, spec, loaded


def _load_weights(path: Path):
    """A weights file, read by the task whose ``format`` it has (a file of no known format by the
    first task, whose reader says what is wrong with it): (that task, the weights)."""
    import json

    try:
        d = json.loads(Path(path).read_text(encoding="utf-8"))
        fmt = d.get("format") or d.get("schema")
    except (OSError, ValueError, AttributeError):
        fmt = None
    reader = next((t for t in TASKS.values() if fmt in t.weights_formats), DEFAULT_TASK)
    return reader, reader.load_weights(path)


def _gather(source: CachedOutputs, data, valid: str, test: str, columns: dict, *, need_valid: bool,
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
                                           "valid": valid_al.logits[i].meta.get("key") if valid_al else None},
                            # the label column of each output, as the user said it (outputs =)
                            **({"outputs": list(source.applied[r.name])} if r.name in source.applied else {})}
                   for i, (r, t) in enumerate(zip(source.refs, test_al.logits))},
        # the settings asked for, and what each member's entry was computed with (fold means: their fold models')
        "inference": {"requested": source.inference.requested(),
                      "members": {r.name: t.meta.get("settings") for r, t in zip(source.refs, test_al.logits)}},
    }
    return _Gathered(test_split, valid_split, test_al, valid_al, provenance, source.task)


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
    if kind == "method":  # never the weights file another submission's sidecar names
        weights_path = kept_weights_path(weights_path, out)
    return out, weights_path


def _save_set(frame, out: Path, sidecar: dict, fitted, weights_path: Path | None, *, pointer: bool = False):
    """The submission, the weights file (``weights_path``: a fitted method's) and the sidecar, as
    one set; what this vote created is removed when the set cannot be completed. ``pointer``
    (a submission named in the submissions folder, not an ``out`` given by hand): then
    ``latest.json`` there points at it."""
    from ensemble.workflows.submission import save_submission

    created: list[Path] = []

    def save_weights():  # between the CSV and its sidecar, which names the weights file
        if not weights_path.parent.exists():
            created.append(weights_path.parent)
        if not weights_path.exists():
            created.insert(0, weights_path)
        fitted.save(weights_path)

    try:
        saved = save_submission(frame, out, sidecar, then=save_weights if weights_path is not None else None,
                                pointer=pointer)
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
    return saved


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


def _check_stale(w, path: Path, refs, digest_of, valid_split, labels, outputs: Mapping = {}) -> None:
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
        was, now = w.meta.get("models", {}).get(r.name, {}).get("outputs"), outputs.get(r.name)
        if (None if was is None else tuple(was)) != (None if now is None else tuple(now)):
            raise EnsembleError(f"{path}: stale: {r.name}'s outputs were named {', '.join(was or ['by its head'])} when "
                                f"the weights were fitted, {', '.join(now or ['by its head'])} now; refit with "
                                f"{flag('weights', '<method>')}")
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
