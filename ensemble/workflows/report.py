"""Per-model and per-ensemble quality side by side, with honest estimates: the report workflow,
the same for every task. It checks the inputs, opens the members, reads their outputs on the
labelled rows (the validation split, or the training split's out-of-fold rows for fold groups),
and hands them to the members' task (:meth:`~ensemble.tasks.base.Task.report`), which scores every
member and method, cross-validates what it fits, and renders the result as text, JSON and an
HTML page (classification: :mod:`ensemble.tasks.classification.report`; regression and
multi-label: :mod:`ensemble.tasks.columns.report`).
"""

from __future__ import annotations

import logging
import os
from typing import Mapping, Sequence

import numpy as np

from ensemble.core.errors import EnsembleError, cli_face, data_fix, flag
from ensemble.estimates.resampling import check_cv
from ensemble.tasks.base import ReportJob
from ensemble.workflows.inputs import Inputs

log = logging.getLogger(__name__)

__all__ = ['report']


def report(
    models: Mapping[str, str | os.PathLike] | Inputs,
    data: Mapping[str, object] | None = None,
    *,
    valid: str = "valid",
    methods: Sequence[str] | None = None,
    metric: str = "accuracy",
    cv=None,
    folds=None,
    repeats: int | None = None,
    seed: int = 0,
    combine: str = "prob",
    cache_dir: str | os.PathLike | None = None,
    columns: Mapping | None = None,
    trained_on_valid: Sequence[str] = (),
    include_optimistic: bool = False,
    best_k: int = 3,
    adjust: str = "auto",
    prior=None,
    adjust_metric: str | None = None,
    fold_column: str | None = None,
    train: str = "train",
    refit: Mapping[str, str] | None = None,
    inference=None,
    class_order=None,
    task: str | None = None,
    threshold="global",
    clip: bool = False,
    check_shift: bool = True,
    outputs: Mapping[str, Sequence[str]] | None = None,
):
    """Score every model and ensemble method on the validation split, honestly: the members' task
    (:meth:`~ensemble.tasks.base.Task.report`) fits and estimates, this function gathers.

    Parameters
    ----------
    models, data, valid, cache_dir, columns
        As for :func:`ensemble.workflows.vote.vote` (``models`` may be an
        :class:`~ensemble.workflows.inputs.Inputs`); ``data[valid]`` must be labelled.
    methods : sequence of str, optional
        Ensemble methods to estimate besides uniform. Default: acc, optimize, select, stack.
    metric : str, default "accuracy"
        The competition's metric: what ``auto`` chooses by, and what the headline, the
        leaderboard and their intervals are in (for classifiers one of accuracy, macro_f1,
        log_loss, roc_auc, qwk; see :func:`~ensemble.workflows.vote.vote`).
    cv : int, sequence of int or FoldPlan, default 5
        How the estimates resample the validation rows
        (:func:`~ensemble.estimates.resampling.check_cv`): K of the repeated stratified K-fold of
        :func:`~ensemble.tasks.classification.estimate.cross_validate`, or the folds given. With fold groups,
        the training folds.
    folds : path-like or Folds, optional
        A folds file (or :class:`~ensemble.data.folds.Folds`) of ``data[train]``: the members are fold
        groups (``runs/bert-fold{fold}``), scored, fitted and estimated on the out-of-fold logits
        of every training row and cross-validated on these folds; ``data[valid]`` is then not
        needed (see :mod:`ensemble.workflows.foldgroups`). An int is the older spelling of ``cv``.
    repeats, seed
        Of the repeated stratified K-fold.
    fold_column, train
        The folds file's fold column and the training split's name in ``data``.
    refit : mapping of member name to fold group name, optional
        Full-data refits (see :func:`~ensemble.workflows.vote.vote`): named in the report, never scored
        on training rows (they saw them all); scored in the group's place on the holdout.
    trained_on_valid : sequence of str
        Models trained on the validation rows: marked, and left out of weight fitting.
    include_optimistic : bool, default False
        Fit weights over every model, including those with optimistic validation scores.
    best_k : int, default 3
        With more than ``best_k`` members, also estimate "average the ``best_k`` best" (0: only
        the single best). The winner's curse: picking the best member (a sweep's best trial) on
        validation is a fit; its cross-validated score (chosen on the other folds, scored on the
        held-out one) sits below the apparent best score.
    adjust : {"auto", "prior", "fit", "none"}, default "auto"
        Class-prior adjustments to estimate on top of the method ``auto`` chose (see
        :mod:`ensemble.tasks.classification.offset_choice`): "auto" estimates "fit", and "prior" when ``prior`` is given,
        and says which ``--adjust auto`` would keep; "none" skips the section.
    prior : optional
        The target class prior (see :func:`ensemble.data.priors.class_prior`).
    adjust_metric : {"accuracy", "macro_f1"}, optional
        Default: ``metric`` when it is one of them, else accuracy.
    inference, class_order
        As for :func:`~ensemble.workflows.vote.vote`: the inference settings whose cached logits are read
        (recorded in ``Report.inference``), and the class of each index for integer labels.
    task, threshold, clip, outputs
        As for :func:`~ensemble.workflows.vote.vote`. Regression and multi-label members give a
        :class:`~ensemble.tasks.columns.render.ValueReport` (``metric`` then defaults to the
        task's: pearson or mcrmse, f1_micro).
    check_shift : bool, default True
        With a test split in ``data``: check that its texts look like the rows the headline is
        estimated on (:func:`~ensemble.estimates.shift.adversarial_check`, a few seconds); when
        they do not, the headline says so. Recorded in ``shift``.
    """

    inputs, cv = _arguments(models, data, valid, cv, folds, columns=columns, fold_column=fold_column, train=train,
                            refit=refit, cache_dir=cache_dir, inference=inference, class_order=class_order,
                            task=task, outputs=outputs)
    source, training, split = _report_inputs(inputs, valid, trained_on_valid)
    # an option of another task refused before any output is read, as the vote refuses it ("auto"
    # adjusts where the task has class priors, and is the default)
    given = {"adjust": "none" if adjust == "auto" else adjust, "prior": prior, "adjust_metric": adjust_metric,
             "threshold": threshold, "clip": clip, "metric": metric, "combine": combine}
    source.task.check_options({k: v for k, v in given.items() if v is not None}, kind="report")
    options = dict(methods=methods, metric=metric, repeats=repeats, seed=seed, combine=combine,
                   trained_on_valid=tuple(trained_on_valid), include_optimistic=include_optimistic, best_k=best_k,
                   adjust=adjust, prior=prior, adjust_metric=adjust_metric, threshold=threshold, clip=clip,
                   train=inputs.train)
    al = source.aligned(split)
    rep = source.task.report(ReportJob(source, al, split, training, inputs.data, valid, inputs.columns, cv, options))
    if check_shift and "test" in inputs.data:
        rep.shift = _shift(rep, source, split, al, training, inputs, valid, "test")
    return rep


def _shift(rep, source, split, al, training, inputs, valid: str, test: str) -> dict | None:
    """The checks of the test rows (their texts, the members' outputs on them) against the rows the
    headline is estimated on: the holdout when it decided, else the rows fitted and scored."""
    from ensemble.data.splits import open_split
    from ensemble.estimates.shift import check_shift

    test_split = open_split(inputs.data[test], test, inputs.columns)
    # the members the ensembles use: one trained on the scored rows is confident there, not shifted
    used = [r.name for r in source.refs if r.name not in set(getattr(rep, "excluded", ()) or ())]
    if rep.headline.get("of") == "holdout":
        return check_shift(source, open_split(inputs.data[valid], valid, inputs.columns), test_split, members=used)
    oof = training is not None and split.name == training.split.name
    return check_shift(source, split, test_split, al, oof=oof, members=used)


def _arguments(models, data, valid: str, cv, folds, **given) -> tuple[Inputs, object]:
    """(inputs, cv), checked before any file is read: ``folds`` an int is the older spelling of
    ``cv``; one data file is the validation split."""
    if isinstance(folds, bool) or (isinstance(folds, (int, np.integer)) and folds < 2):
        raise EnsembleError(f"folds must be 2 or more (K of the K-fold cross-validation), or a folds file; got {folds!r}")
    if isinstance(folds, (int, np.integer)):
        cv, folds = (int(folds) if cv is None else cv), None
    cv = check_cv(5 if cv is None else cv)
    if not isinstance(models, Inputs) and data is not None and not isinstance(data, Mapping):
        data = {valid: data}
    return Inputs.of(models, data, folds=folds, **given), cv


def _report_inputs(inputs: Inputs, valid: str, trained_on_valid):
    """(source, training folds or None, the labelled split scored on): the validation split, or
    the training split's out-of-fold rows when the members are fold groups."""
    from ensemble.workflows.gather import check_fold_groups, source_of, training_of
    from ensemble.data.splits import open_split
    from ensemble.workflows.members import resolve_members

    data = inputs.data
    training = training_of(inputs)
    if training is None and valid not in data:
        raise EnsembleError(f"report needs the labelled validation split; {data_fix(valid)}")
    members = resolve_members(inputs.members, None if training is None else training.k)
    names = [m.name for m in members]
    unknown = [n for n in trained_on_valid if n not in names]
    if unknown:
        raise EnsembleError(f"{flag('trained_on_valid', repr(unknown[0]))} is not a "
                            f"{'--model name' if cli_face() else 'member'} ({', '.join(names)})")
    source = source_of(inputs, training, members)
    source.warn_duplicates()
    oof = check_fold_groups(source, training, valid if valid in data else None)
    split = training.split if oof else open_split(data[valid], valid, inputs.columns)
    split.require_labels("the report scores against the out-of-fold training labels" if oof else
                         "the report scores against validation labels")
    return source, training if oof else None, split


