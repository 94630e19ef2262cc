"""Soft voting over cached logits, the vote workflow: gather the members' logits (aligned by
:mod:`ensemble.combination`), fit or load weights, and write the submission.

numpy only at import; ``vote`` reads data with pandas and logits from the cache, and never
imports torch or transformers.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from .combination import COMBINE_RULES, Aligned, align, as_arrays, as_log_probs, combine, log_softmax, mix, softmax  # noqa: F401
from .errors import NAME_RULE, EnsembleError, in_project, is_name, option
from .members import resolve_members
from .provenance import model_notes

__all__ = ["COMBINE_RULES", "softmax", "log_softmax", "combine", "mix", "align", "as_arrays", "Aligned", "CachedLogits",
           "gather", "vote"]

log = logging.getLogger(__name__)

# --------------------------------------------------------------------------- the vote command


def open_split(value, name: str, columns: Mapping):
    from .data import Split, load_split

    if isinstance(value, Split):
        return value
    return load_split(value, name=name, **columns)


class CachedLogits:
    """The members' cached logits: the model folders opened once, the cache's entries read once,
    each model's content digest computed once, whatever number of splits is asked for.

    Parameters
    ----------
    members : mapping of name to model folder, or list of Member
        As given to ``ensemble predict`` (:func:`~ensemble.members.resolve_members`).
    cache_dir : path-like, optional
        The logit cache (default: ``.ensemble/cache`` beside ``ensemble.toml``, else here).
    training : TrainingFolds, optional
        The training split and its folds (:mod:`ensemble.foldgroups`): where fold groups have
        out-of-fold logits. Needed when a member is a fold group.
    refit : mapping of member name to fold group name, optional
        Full-data refits: the member (a model trained on every training row) takes its fold
        group's place on the test split, with the group's weight; it is neither fitted nor scored
        (it has no honest score). ``refs`` then lists the other members, ``refits`` maps each
        group to its refit's ModelRef.
    inference : InferenceSettings or mapping, optional
        The inference settings whose cache entries are read (default: predict's defaults); an
        entry computed with other settings (``--max-length 14`` as an experiment) is never used.
    class_order : str ("a,b,c") or sequence of str, optional
        The class of each index, for labels given as class indices when the members number their
        classes differently.
    """

    def __init__(self, members, cache_dir: str | os.PathLike | None = None, training=None,
                 refit: Mapping[str, str] | None = None, *, inference=None, class_order=None):
        from .cache import LogitCache
        from .foldgroups import GroupRef
        from .inference import InferenceSettings, ModelRef

        self.inference = InferenceSettings.of(inference)
        self.class_order = _class_order(class_order)

        self.members = resolve_members(members, None if training is None else training.k)
        refit = dict(refit or {})
        check_refit(self.members, refit)
        self.cache = LogitCache(cache_dir)
        self.training = training
        refs = [GroupRef.open(m) if m.is_fold_group else ModelRef.open(m.folder, m.name) for m in self.members]
        self.refs = [r for r in refs if r.name not in refit]
        by_name = {r.name: r for r in refs}
        self.refits = {group: by_name[name] for name, group in refit.items()}
        self.members = [m for m in self.members if m.name not in refit]
        self.entries = self.cache.entries()  # headers read once, newest first
        self._digests: dict[str, str] = {}

    def leave_out(self, names) -> None:
        """Drop these members (and any refit of theirs)."""
        names = set(names)
        self.refs = [r for r in self.refs if r.name not in names]
        self.members = [m for m in self.members if m.name not in names]
        self.refits = {g: r for g, r in self.refits.items() if g not in names}

    @property
    def fold_groups(self) -> list[str]:
        """The names of the members that are fold groups."""
        return [r.name for r in self.refs if r.kind == "folds"]

    def fold_group_folders(self) -> dict[str, list[str]]:
        """Each fold group's fold model folders (absolute, fold 0 first), for provenance."""
        return {r.name: r.folders() for r in self.refs if r.kind == "folds"}

    @property
    def estimates(self):
        """The stored cross-validated estimates, beside the logit cache (``<cache>/estimates``)."""
        from .estimate_store import EstimateStore

        return EstimateStore(self.cache.root / "estimates")

    def digest_of(self, ref) -> str:
        if ref.name not in self._digests:
            self._digests[ref.name] = ref.fingerprint(self.cache.file_digest)
        return self._digests[ref.name]

    def warn_duplicates(self) -> None:
        """Two members with the same content (one folder copied, or listed under two names) vote
        twice: said in a warning naming them."""
        seen: dict[str, str] = {}
        for r in self.refs:
            d = self.digest_of(r)
            if d in seen:
                log.warning("%s and %s are the same model (identical weights, config and tokenizer): it votes twice, "
                            "with twice the weight; list it once", seen[d], r.name)
            seen.setdefault(d, r.name)

    def logits(self, ref, split, fix: str | None = None):
        """The newest cache entry of this model over this split computed with the settings in
        force (:attr:`inference`), as Logits; an error saying which ``ensemble predict`` to run
        when there is none. A fold group's are its OOF logits on the training split and its fold
        mean on any other (:mod:`ensemble.foldgroups`)."""
        if ref.kind == "folds":
            return self._group_logits(ref, split)
        from .inference import settings_difference

        model_digest = self.digest_of(ref)
        cache = self.cache
        entries = [e for e in self.entries if e.damaged is None and e.metadata.get("model_digest") == model_digest
                   and e.metadata.get("data_digest") == split.digest]
        problems: list[str] = []
        others: list[str] = []
        for entry in entries:  # newest first
            why = settings_difference(entry.settings, ref, self.inference)
            if why is not None:
                others.append(why)
                continue
            lg = cache.get(entry.key, split.ids, problems)
            if lg is not None:
                log.debug("%s/%s: %s", ref.name, split.name, entry.path)
                from .logits import Logits

                return Logits(lg.ids, lg.values, lg.labels, ref.name, split.name, {**lg.meta, "key": entry.key})
        broken = [e for e in self.entries if e.damaged is not None]  # unreadable: whose they are is unknown
        if problems:
            damaged = f" (a damaged entry was removed: {problems[0]})"
        elif others:
            damaged = (f" with these inference settings (it has {len(others)} entr{'y' if len(others) == 1 else 'ies'} "
                       f"of other settings: {others[0]}; ask for those, or predict with these)")
        elif broken:
            damaged = (f" ({len(broken)} damaged cache entr{'y' if len(broken) == 1 else 'ies'}, e.g. {broken[0].path.name}: "
                       f"{broken[0].damaged}; it may have been this one)")
        else:
            damaged = " (or they are stale)"
        project = in_project()
        if project is not None:  # one command computes every member's logits: name it, not this member's
            fix = (f"run ensemble predict (it reads {project} and computes what is missing) or ensemble run"
                   if _project_member(project, ref.name) else
                   f"run ensemble predict --model {ref.name}={ref.folder} (it is not a member of {project}: a bare "
                   "ensemble predict computes the project's members only)")
        elif fix is None:
            fix = (f"run: ensemble predict --model {ref.name}={ref.folder} --data {split.name}={split.path}"
                   + (f" --cache-dir {cache.root}" if cache.root != _default_root() else ""))
        else:
            fix += f" --cache-dir {cache.root}" if cache.root != _default_root() else ""
        raise EnsembleError(f"model {ref.name} has no cached logits for {split.path}{damaged}; {fix}")

    def _group_logits(self, ref, split):
        from .foldgroups import fold_mean, held_out, out_of_fold

        t = self.training
        oof = t is not None and split.name == t.split.name
        if oof and split.digest != t.split.digest:
            raise EnsembleError(f"{split.path}: not the training split the folds were read for ({t.split.path})")
        folds_flag = f" --folds {t.folds.path}" if t is not None and t.folds.path is not None else " --folds FILE"
        fix = f"run: ensemble predict --model {ref.name}={ref.folder} --data {split.name}={split.path}" + (
            folds_flag if oof else "")
        if oof:
            parts = [self.logits(p, held_out(t, k), fix) for k, p in enumerate(ref.parts)]
            _check_held_out(ref, parts, t)
            return out_of_fold(parts, t, ref.name)
        return fold_mean([self.logits(p, split, fix) for p in ref.parts], ref.name)

    def aligned(self, split, labels: Sequence[str] | None = None, refit: bool = False) -> Aligned:
        """Every model's logits over ``split`` (a :class:`~ensemble.data.Split`), aligned in the
        split's row order and in ``labels`` (default: the first model's) class order, with ``y``
        when the split is labelled. ``refit``: each fold group with a full-data refit gives way
        to it (on the test split)."""
        refs = [self.refits.get(r.name, r) if refit else r for r in self.refs]
        logits = [self.logits(r, split) for r in refs]
        if self.class_order is not None and set(self.class_order) != set(logits[0].labels):
            raise EnsembleError(f"class_order {','.join(self.class_order)} does not name the members' classes "
                                f"({', '.join(sorted(logits[0].labels))}); name each of them once")
        al = align(logits, ids=split.ids, labels=labels)
        if split.labels is not None:
            al.y = split.label_indices(al.labels, model=self.refs[0].name, index_order=self._index_order(split, logits))
        al.logits = logits
        return al

    def _index_order(self, split, logits) -> tuple[str, ...] | None:
        """The class of each index, for a split whose labels are class indices: ``class_order``,
        else the order every member's id2label agrees on; members that number their classes
        differently are an error asking for ``class_order`` (the first member's order would
        decide, and listing the members in another order would change the labels)."""
        if self.class_order is not None:
            return self.class_order
        orders = {}
        for lg in logits:
            orders.setdefault(tuple(lg.labels), lg.model)
        if len(orders) == 1 or not split.has_index_labels(next(iter(orders))):
            return next(iter(orders))
        (a, na), (b, nb) = list(orders.items())[:2]
        raise EnsembleError(f"{split.path}: its labels are class indices, but the members number their classes "
                            f"differently ({na}: {','.join(a)}; {nb}: {','.join(b)}); "
                            f"{option('class_order', ','.join(a))} to say which class each index is")


def gather(models: Mapping[str, str | os.PathLike], data: Mapping[str, object] | object, split: str = "valid", *,
           cache_dir: str | os.PathLike | None = None, columns: Mapping | None = None, folds=None,
           fold_column: str | None = None, train: str = "train", inference=None, class_order=None) -> Aligned:
    """The members' cached logits over one split, aligned by class name and row id, with the
    true class indices: what :func:`~ensemble.weighting.fit_weights`,
    :func:`~ensemble.estimate.cross_validate` and the class-prior functions take.

    Parameters
    ----------
    models : mapping of name to model folder
        As for :func:`vote` (``DIR@top3`` members are expanded); their logits must be cached.
    data : mapping of split name to data file or Split, or one data file or Split
    split : str, default "valid"
        Which split of ``data`` to gather.
    cache_dir, columns
        As for :func:`vote`.
    folds, fold_column, train
        For fold groups (``runs/bert-fold{fold}``), as for :func:`vote`: gathered on ``train``,
        their logits are out of fold (fold model k's on the rows of fold k); on any other split,
        the log of their fold models' mean probabilities.
    inference, class_order
        As for :func:`vote`.

    Returns
    -------
    Aligned
        ``arrays`` (M arrays, n x C), ``y`` (n class indices, None when the split is unlabelled),
        ``labels`` (class names), ``ids``, ``models``, ``logits`` (the Logits read).

    Examples
    --------
    >>> al = gather({"a": "weights/a-top4", "b": "weights/b-top4"}, {"valid": "data/valid.csv"})
    >>> fit_weights(al.arrays, al.y, "optimize", names=al.models)
    """
    columns = dict(columns or {})
    if not isinstance(data, Mapping):
        data = {split: data}
    if split not in data:
        raise EnsembleError(f"no {split!r} split given; pass data={{{split!r}: PATH}}, got {', '.join(data) or 'none'}")
    if not models:
        raise EnsembleError("no model given; pass a mapping of member names to model folders")
    training = training_folds(data, folds, train, columns, fold_column)
    data = _with_training(data, train, training)
    source = CachedLogits(models, cache_dir, training, inference=inference, class_order=class_order)
    check_fold_groups(source, training, None if split == train else split)
    return source.aligned(open_split(data[split], split, columns))


def _check_held_out(ref, parts, training) -> None:
    """A fold model that scores far above what its own run logged on its eval set (its fold's
    held-out rows) has likely seen those rows (a full-data refit, a model of another fold):
    said in a warning naming it, since its out-of-fold rows would be optimistic."""
    from .foldgroups import held_out
    from .provenance import logged_accuracy

    if training.split.labels is None:
        return
    for k, (part, lg) in enumerate(zip(ref.parts, parts)):
        logged = logged_accuracy(part.folder)
        if logged is None:
            continue
        rows = held_out(training, k)
        y = rows.label_indices(lg.labels, model=part.name)
        acc = float((np.asarray(lg.values).argmax(axis=1) == y).mean())
        margin = max(0.15, 3 * np.sqrt(max(logged * (1 - logged), 0.01) / len(y)))
        if acc > logged + margin:
            log.warning("%s: fold model %d (%s) scores %.3f on the rows of fold %d, far above the eval_accuracy %.3f its "
                        "run logged: it may have been trained on them (a refit, another fold's model); its out-of-fold "
                        "rows would be optimistic", ref.name, k, part.folder, acc, k, logged)


def _project_member(project, name: str) -> bool:
    """Whether ``name`` (a model, or a fold model ``<group>-fold<k>``) is a member of the project file."""
    import re

    from .project import load_project

    try:
        names = set(load_project(project).model_paths())
    except EnsembleError:
        return True
    return name in names or re.sub(r"-fold\d+$", "", name) in names


def _class_order(value) -> tuple[str, ...] | None:
    """``class_order`` as given ("a,b,c" or a sequence of names), checked: each name once."""
    if value is None:
        return None
    names = [v.strip() for v in value.split(",")] if isinstance(value, str) else [str(v) for v in value]
    if not names or any(not n for n in names) or len(set(names)) != len(names):
        raise EnsembleError(f"class_order must name each class once, separated by commas; got {value!r}")
    return tuple(names)


def _default_root() -> Path:
    from .cache import default_cache_dir

    return default_cache_dir()


def weights_kind(spec: str) -> str:
    """What a ``--weights`` value names: "method" (a method name or auto), "file" (a weights
    .json, a path), "fixed" (numbers w1,w2,...; checked when they are parsed), else "unknown"."""
    from .weighting import is_method

    if is_method(spec) or spec == "auto":
        return "method"
    if spec.endswith(".json") or os.path.sep in spec or Path(spec).is_file():
        return "file"
    try:
        [float(v) for v in spec.split(",")]
    except ValueError:
        return "unknown"
    return "fixed"


def _parse_weights(spec: str, models: Sequence[str]):
    """``spec`` is a method name, a weights file, or ``w1,w2,...``; returns (kind, value)."""
    from .weighting import METHODS

    expected = f"auto, one of {', '.join(METHODS)}, best<K> (best3), a weights .json file or numbers w1,w2,..."
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
            raise EnsembleError(f"--weights must be {expected}; got {spec!r}")
        values = np.array([float(v) for v in spec.split(",")])
    if len(values) != len(models):
        raise EnsembleError(f"got {len(values)} weights, {len(models)} models ({', '.join(models)}); "
                            "give one weight per --model, in order")
    from .weighting import check_weights

    check_weights(values, "--weights")  # before any file is read
    return "fixed", values


def vote(
    models: Mapping[str, str | os.PathLike],
    data: Mapping[str, object],
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
):
    """Combine the cached logits of several models and write the submission.

    Parameters
    ----------
    models : mapping of name to model folder, or list of :class:`~ensemble.members.Member`
        As given to ``ensemble predict`` (``DIR@top3`` expands to a sweep's best trials); their
        logits must be cached.
    data : mapping of split name to data file (or Split)
        Must hold ``test``; ``valid`` (labelled) when weights are fitted or checked.
    weights : str, default "uniform"
        A method of :func:`~ensemble.weighting.fit_weights` ("uniform", "acc", "optimize",
        "select", "stack"), fitted on ``valid`` and saved to ``weights_dir/<name>-<method>.json``;
        a weights file written before (checked against the current models and validation data);
        or fixed weights "w1,w2,..." in the order of ``models``.
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
        See :func:`~ensemble.weighting.fit_weights`.
    columns : mapping, optional
        ``id``, ``text``, ``label``, ``encoding`` for reading the data files.
    adjust : {"none", "prior", "fit", "auto"}, default "none"
        Class-prior adjustment of the ensemble (:mod:`ensemble.priors`), fitted on ``valid``
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
        left out of the vote, as :func:`~ensemble.report.report` leaves them out of its
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

    Returns
    -------
    pandas.DataFrame
        The submission as written; ``.attrs`` holds the output path and the :class:`Weights`.
    """
    columns = dict(columns or {})
    _check_data(data, valid, test)
    training = training_folds(data, folds, train, columns, fold_column)
    data = _with_training(data, train, training)
    members, kind, spec, loaded = _arguments(models, data, weights, name, test, adjust, adjust_metric, prior,
                                             None if training is None else training.k, refit or {})
    source = CachedLogits(members, cache_dir, training, refit, inference=inference, class_order=class_order)
    cv = {}
    if check_fold_groups(source, training, valid if valid in data else None):
        valid, cv = train, {"splits": training.folds.fold}  # fitted and estimated on the OOF rows
    if valid in data:  # read once, for the members left out below and for the fit
        data = {**data, valid: open_split(data[valid], valid, columns)}
    if kind == "method" and not include_optimistic:
        _leave_out_optimistic(source, data[valid] if valid in data else None, trained_on_valid)
    source.warn_duplicates()
    need_valid = kind == "file" or (kind == "method" and spec != "uniform")  # weights fitted on validation
    g = _gather(source, data, valid, test, columns, need_valid=need_valid, weights=weights)
    if source.fold_groups:  # on their out-of-fold rows, or beside models on the validation rows as fold means
        rows = ({**training.describe(), "kind": "out-of-fold", "split": train} if cv else
                {"kind": "validation", "split": valid, "fold_groups_as": "the mean of their fold models"})
        g.provenance["fitted_on"] = {**rows, "fold_groups": source.fold_group_folders()}
    if source.refits:
        g.provenance["refit"] = {group: {"model": r.name, "path": str(r.folder.resolve()),
                                         "model_digest": source.digest_of(r)} for group, r in source.refits.items()}
        log.info("refit: %s on the test split, with the weight of %s; the estimates are the fold groups' (a refit "
                 "has no honest score)", ", ".join(f"{r.name} takes the place of {g_}" for g_, r in source.refits.items()),
                 "its group" if len(source.refits) == 1 else "their groups")
    _check_validation(g, source.refs, fitted_method=kind == "method" and spec != "uniform", need_valid=need_valid,
                      weights=weights, adjust=adjust)
    fit_kwargs = dict(combine=combine, temperature=temperature, calibrate=calibrate, acc_power=acc_power, seed=seed,
                      names=[m.name for m in source.members])
    fitted = _weights(kind, spec, loaded, g, source, fit_kwargs, cv)
    if adjust != "none":
        fitted = _adjust(fitted, adjust, prior, adjust_metric, g.valid_al, g.y, g.valid_split, g.test_al.labels,
                         columns, g.provenance, fit_kwargs, store=source.estimates, cv=cv)
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


def _check_data(data, valid: str, test: str) -> None:
    if not isinstance(data, Mapping):
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

    @property
    def y(self):
        return None if self.valid_al is None else self.valid_al.y


def training_folds(data: Mapping, folds, train: str, columns: Mapping, fold_column: str | None = None):
    """The training split and its folds (:class:`~ensemble.foldgroups.TrainingFolds`) when
    ``folds`` is given, else None; a one-line error when the training split is missing."""
    if folds is None:
        return None
    from .foldgroups import open_training_folds

    if train not in data:
        raise EnsembleError(f"--folds {folds} splits the training file: pass --data {train}=PATH (the labelled file the "
                            "fold models were trained on)")
    split = open_split(data[train], train, columns)
    return open_training_folds(split, folds, fold_column=fold_column, encoding=columns.get("encoding"))


def _with_training(data: Mapping, train: str, training) -> Mapping:
    """``data`` with the training split as read for its folds, so that it is read once."""
    return data if training is None else {**data, train: training.split}


def _refit_said(name: str, group: str) -> str:
    """Where a refit was given, in the words of the face: the flag, the keyword or the key."""
    from .errors import cli_face

    if in_project() is not None and not cli_face():
        return f'[models] or [runs] {name}: refit_of = "{group}" of {in_project()}'
    return f"--refit {name}={group}" if cli_face() else f"refit={{{name!r}: {group!r}}}"


def check_refit(members, refit: Mapping[str, str]) -> None:
    """Each refit is a model member and takes the place of a fold group member, one per group."""
    if not refit:
        return
    kinds = {m.name: m for m in members}
    groups = [m.name for m in members if m.is_fold_group]
    seen: dict[str, str] = {}
    for name, group in refit.items():
        said = _refit_said(name, group)
        if name not in kinds:
            raise EnsembleError(f"{said}: {name!r} is not a member ({', '.join(kinds)}); add it (the model trained on "
                                "every training row)")
        if kinds[name].is_fold_group:
            raise EnsembleError(f"{said}: {name} is a fold group; a refit is one model folder trained on every training "
                                "row")
        if group not in groups:
            raise EnsembleError(f"{said}: {group!r} is not a fold group member (fold groups: {', '.join(groups) or 'none'})"
                                "; a refit takes a fold group's place on test")
        if group in seen:
            raise EnsembleError(f"{said}: fold group {group} has two refits, {seen[group]} and {name}; give it one")
        seen[group] = name


def check_fold_groups(source: CachedLogits, training, valid: str | None = None) -> bool:
    """Whether the members are fold groups, then fitted on their out-of-fold rows. A fold group
    needs the folds. Fold groups and models have no training rows in common: with a validation
    split ``valid`` (a split name, None when there is none) every member is fitted there, the
    fold groups as their fold means (said in the log); without one, an error naming which member
    is which."""
    groups = source.fold_groups
    if not groups:
        if training is not None:
            log.warning("--folds %s: no member is a fold group (a path with {fold}); the folds are not used",
                        training.folds.path)
        return False
    plain = [r.name for r in source.refs if r.name not in groups]
    which = (f"{', '.join(plain)} {'is a model' if len(plain) == 1 else 'are models'} and {', '.join(groups)} "
             f"{'is a fold group' if len(groups) == 1 else 'are fold groups'}")
    if plain and valid is not None:
        log.info("%s: every weight is fitted and estimated on the rows of %s, the fold groups as the mean of their fold "
                 "models (their out-of-fold rows are not used: the models have none)", which, valid)
        return False
    if plain:
        raise EnsembleError(f"{which}: they have no training rows in common to fit or estimate on (fold groups have "
                            "out-of-fold rows, models none); pass --data valid=PATH to fit every member there (the fold "
                            "groups as their fold means), or ensemble fold groups alone, or models alone")
    if training is None:
        raise EnsembleError(f"member {groups[0]} is a fold group; pass --folds FILE and --data train=PATH (its fold "
                            "models' held-out rows), or folds = \"FILE\" in [data] of ensemble.toml")
    return True


def _arguments(models, data, weights, name, test, adjust, adjust_metric, prior, k=None, refit: Mapping = {}):
    """Every argument checked before any file is read: (members, kind, spec, loaded weights file)."""
    from .adjustment import needs_prior, check_adjust
    from .weighting import Weights

    if not models:
        raise EnsembleError("no model given; pass --model NAME=PATH, once per model")
    if not is_name(name):  # it names the weights file and the submission: never a path
        raise EnsembleError(f"--name {name!r}: must be {NAME_RULE} (outputs go to weights_dir and submissions_dir, or "
                            "--out)")
    members = resolve_members(models, k)  # NAME=DIR@top3: the best checkpoints of a sweep's 3 best trials
    if test not in data:
        raise EnsembleError(f"no {test!r} split given; pass --data {test}=PATH with the test file")
    check_refit(members, refit)
    kind, spec = _parse_weights(weights, [m.name for m in members if m.name not in refit])  # a refit has its group's
    check_adjust(adjust, metric=adjust_metric, auto=True)
    if kind == "file" and adjust != "none":
        raise EnsembleError(f"{spec}: a weights file keeps the adjustment it was fitted with; {option('adjust', 'none')}, "
                            "or refit with --weights <method> --adjust ...")
    if adjust == "prior" and prior is None:
        raise EnsembleError(needs_prior())
    loaded = Weights.load(spec) if kind == "file" else None  # every field checked before the logits are read
    return members, kind, spec, loaded


def _gather(source: CachedLogits, data, valid: str, test: str, columns: dict, *, need_valid: bool,
            weights: str) -> _Gathered:
    """The test split and (when given) the validation split, every member's logits aligned on
    them in the test logits' class order, and their provenance."""
    test_split = open_split(data[test], test, columns)
    valid_split = None
    if valid in data:
        valid_split = open_split(data[valid], valid, columns)
    elif need_valid:
        raise EnsembleError(f"--weights {weights} needs the validation split; pass --data {valid}=PATH (labelled)")
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
    return _Gathered(test_split, valid_split, test_al, valid_al, provenance)


def _check_validation(g: _Gathered, refs, *, fitted_method: bool, need_valid: bool, weights: str, adjust: str) -> None:
    """Errors first (nothing can be fitted on one class), then what the user should know: members
    at chance level, classes with no validation row, members whose scores there are optimistic."""
    y = g.y
    if y is None:
        return
    from .scores import at_chance, need_classes

    labels = g.test_al.labels
    if fitted_method:
        need_classes(y, f"--weights {weights}", labels)
    if adjust != "none":
        need_classes(y, f"--adjust {adjust}", labels)
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


def _weights(kind: str, spec, loaded, g: _Gathered, source: CachedLogits, fit_kwargs: dict, cv: Mapping = {}):
    """The Weights to vote with: fitted on validation (a method, auto choosing it by a
    cross-validated estimate), fixed by hand, or a weights file checked against its inputs."""
    from .procedure import Procedure
    from .scores import scores
    from .weighting import Weights

    labels, y, names = g.test_al.labels, g.y, fit_kwargs["names"]
    if kind == "file":
        _check_stale(loaded, spec, source.refs, source.digest_of, g.valid_split, labels)
        _check_folds(loaded, spec, g.provenance.get("fitted_on"))
        return loaded
    if kind == "fixed":
        fixed = Weights("fixed", tuple(names), spec / spec.sum(), fit_kwargs["combine"], labels, meta=g.provenance)
        return fixed if y is None else replace(fixed, apparent=scores(fixed.predict_proba(g.valid_al.arrays), y))
    if spec != "uniform" and y is None:
        g.valid_split.require_labels(f"--weights {spec} is fitted on validation labels (or use --weights uniform)")
    if spec == "auto":
        from .estimate import select_method

        # log-probabilities once for every estimate (their keys hash them, as the report's do)
        log_probs = [as_log_probs(a) for a in g.valid_al.arrays]
        spec, reason, estimates = select_method(log_probs, y, store=source.estimates, **cv, **fit_kwargs)
        log.info("auto -> %s", reason)
        g.provenance["auto"] = {"chosen": spec, "reason": reason, "candidates": {
            m: {"cross_validated": dict(e.cross_validated), "gain_vs_uniform": dict(e.gain_vs_uniform),
                "gain_interval": {k: list(v) for k, v in e.gain_interval.items()}, "mcnemar_p": e.mcnemar_p}
            for m, e in estimates.items()}}
    if y is not None:
        fitted = Procedure.of(spec, **fit_kwargs).weights.fit(g.valid_al.arrays, y, names=names)
    else:
        fitted = Weights("uniform", tuple(names), np.full(len(names), 1 / len(names)), fit_kwargs["combine"], labels)
    return Weights(fitted.method, fitted.models, fitted.weights, fitted.combine, labels, fitted.temperatures,
                   fitted.calibration, fitted.stacker, fitted.apparent, {**fitted.meta, **g.provenance})


def _write(fitted, test_proba: np.ndarray, g: _Gathered, *, kind: str, spec, name: str, out, weights_dir,
           submissions_dir, sample_submission, proba: bool, class_order, procedure: dict | None = None,
           force: bool = False):
    """The submission, the weights file (for a fitted method) and the sidecar, as one set: named
    after the method and adjustment; what this vote created is removed when the set fails."""
    from .submission import make_submission, save_submission

    labels = g.test_al.labels
    method = fitted.method
    adjusted = fitted.adjustment is not None and fitted.adjustment.get("kind") != "none" and kind != "file"
    if adjusted:
        method = f"{method}-{fitted.adjustment['kind']}"
    weights_path = spec if kind == "file" else Path(weights_dir) / f"{name}-{method}.json" if kind == "method" else None
    renamed = None if out is not None else _free_name(Path(submissions_dir), f"{name}-{method}", procedure, force)
    out = Path(out) if out is not None else renamed
    sidecar = {"weights_file": None if weights_path is None else str(Path(weights_path).resolve()),
               "method": method, "combine": fitted.combine,
               "weights": {m: float(w) for m, w in zip(fitted.models, fitted.weights)},
               "adjustment": fitted.adjustment,
               "test": {"path": str(g.test_split.path.resolve()), "data_digest": g.test_split.digest,
                        "rows": len(g.test_split)},
               **g.provenance, "procedure": procedure}
    _refuse_other_procedure(out, procedure, force)
    if renamed is not None and kind == "method" and renamed.stem != f"{name}-{method}":
        weights_path = Path(weights_dir) / f"{out.stem}.json"  # beside its submission's new name
        sidecar["weights_file"] = str(weights_path.resolve())
    frame = make_submission(g.test_split.ids, test_proba, labels, sample_submission=sample_submission,
                            proba_columns=proba, id_column=g.test_split.id_column or "id",
                            label_column=(g.valid_split.label_column if g.valid_split is not None else None) or "label",
                            class_order=class_order,
                            member_orders={lg.model: lg.labels for lg in g.test_al.logits},
                            text_columns=g.test_split.text_columns)
    created: list[Path] = []  # what this vote wrote, removed again if the set cannot be completed

    def save_weights():  # between the CSV and its sidecar, which names the weights file
        if not weights_path.parent.exists():
            created.append(weights_path.parent)
        if not weights_path.exists():
            created.insert(0, weights_path)
        fitted.save(weights_path)

    try:
        frame = save_submission(frame, out, sidecar, then=save_weights if kind == "method" else None)
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
    frame.attrs.update(path=str(out), weights=fitted)
    log.info("wrote %s (%d rows; %s)", out, len(frame),
             class_counts(labels, np.bincount(test_proba.argmax(axis=1), minlength=len(labels))))
    return frame


def _procedure_of(out: Path) -> dict | None:
    """The procedure recorded in ``out``'s sidecar (None: no sidecar, or one from before it was recorded)."""
    import json

    from .submission import sidecar_path

    try:
        return json.loads(sidecar_path(out).read_text(encoding="utf-8")).get("procedure")
    except (OSError, ValueError, AttributeError):
        return None


def _free_name(folder: Path, stem: str, procedure: dict | None, force: bool) -> Path:
    """``folder/stem.csv``, unless another procedure's submission is there: then the first of
    ``stem-2.csv``, ``stem-3.csv`` ... that is free or holds this procedure's (said in the log)."""
    first = folder / f"{stem}.csv"
    if force or procedure is None:
        return first
    for i in range(1, 1000):
        path = first if i == 1 else folder / f"{stem}-{i}.csv"
        before = _procedure_of(path) if path.is_file() else None
        if not path.is_file() or before is None or before == procedure:
            if i > 1:
                log.info("%s holds the submission of another procedure: this one is %s (force=True / --force "
                         "replaces it)", first, path.name)
            return path
    return first


def _refuse_other_procedure(out: Path, procedure: dict | None, force: bool) -> None:
    """A submission that another procedure wrote (other weights, combine rule, adjustment or
    members: the CLI with a project's defaults, a notebook without them) is not replaced in
    silence under the same name."""
    if force or procedure is None or not out.is_file():
        return
    before = _procedure_of(out)
    if before is None or before == procedure:
        return
    what = ", ".join(f"{k} {before.get(k)!r} then, {procedure.get(k)!r} now" for k in procedure
                     if before.get(k) != procedure.get(k))
    raise EnsembleError(f"{out}: holds the submission of another procedure ({what}); {option('force')} to replace "
                        f"it, or {option('name', 'OTHER')} to keep both")


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
    from .priors import class_prior, select_adjustment
    from .procedure import AdjustMethod
    from .scores import scores

    if y is None:
        what = "is not given" if valid_split is None else f"({valid_split.path}) has no labels"
        raise EnsembleError(f"--adjust {adjust} is fitted on labelled validation rows, but the validation split {what}; "
                            "pass --data valid=PATH with a label column, or drop --adjust")
    target = None if prior is None else class_prior(prior, labels, columns=columns)
    kind = adjust
    method = fitted.method if fitted.method != "fixed" else "uniform"
    proba = fitted.predict_proba(valid_al.arrays)
    if adjust == "auto":
        if fitted.method == "fixed":
            raise EnsembleError("--adjust auto estimates the adjustment with a fitted method; give --weights "
                                "<method>, or --adjust prior / fit")
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
                "were fitted on other folds" if now is not None else "were fitted on out-of-fold rows; pass the same --folds")
        raise EnsembleError(f"{path}: stale: the weights {what}; refit with --weights <method>")


def _check_stale(w, path: Path, refs, digest_of, valid_split, labels) -> None:
    names = [r.name for r in refs]
    if list(w.models) != names:
        raise EnsembleError(f"{path}: weights are for models {', '.join(w.models)} but {', '.join(names)} are given; "
                            "give the same --model names in the same order, or refit")
    for r in refs:
        recorded = w.meta.get("models", {}).get(r.name, {}).get("model_digest")
        if recorded is None:
            raise EnsembleError(f"{path}: records no model_digest for {r.name}, so it cannot be checked against the "
                                "models; refit with --weights <method>")
        if recorded != digest_of(r):
            raise EnsembleError(f"{path}: stale: model {r.name} ({r.folder}) changed since the weights were fitted; "
                                "refit with --weights <method>")
    valid = w.meta.get("valid") or {}
    if w.method not in ("uniform", "fixed") and not valid.get("data_digest"):
        raise EnsembleError(f"{path}: records no validation data digest, so it cannot be checked against the data it "
                            "was fitted on; refit with --weights <method>")
    if valid.get("data_digest") and (valid_split is None or valid_split.digest != valid["data_digest"]):
        what = "is not given" if valid_split is None else f"({valid_split.path}) differs from the one they were fitted on"
        raise EnsembleError(f"{path}: stale: the validation data {what}; pass the same --data valid=... or refit")
    if w.method not in ("uniform", "fixed") and not valid.get("labels_digest"):
        raise EnsembleError(f"{path}: records no digest of the validation labels it was fitted on; refit with "
                            "--weights <method>")
    if w.method not in ("uniform", "fixed") and valid.get("labels_digest") != valid_split.labels_digest:
        raise EnsembleError(f"{path}: stale: the labels of {valid_split.path} (or its label column) differ from the ones "
                            "the weights were fitted on; refit with --weights <method>")
    if w.labels and tuple(w.labels) != tuple(labels):
        raise EnsembleError(f"{path}: weights are for classes {', '.join(w.labels)} but the models have "
                            f"{', '.join(labels)}; refit")
