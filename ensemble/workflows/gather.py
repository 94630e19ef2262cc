"""Gathering the members' cached logits for a split: model folders opened once, cache entries
read once, fold groups' out-of-fold rows and fold means, aligned by class name and row id."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Mapping, Sequence

from ensemble.core.combination import Aligned
from ensemble.core.errors import EnsembleError, data_fix, flag, folds_fix, in_project, option, project_members
from ensemble.data.splits import open_split
from ensemble.tasks import open_member, shared_task
from ensemble.workflows.inputs import Inputs
from ensemble.workflows.members import resolve_members

log = logging.getLogger(__name__)

__all__ = ['CachedOutputs', 'gather']


# --------------------------------------------------------------------------- the vote command


class CachedOutputs:
    """The members' cached logits: the model folders opened once, the cache's entries read once,
    each model's content digest computed once, whatever number of splits is asked for.

    Parameters
    ----------
    members : mapping of name to model folder, or list of Member
        As given to ``ensemble predict`` (:func:`~ensemble.workflows.members.resolve_members`).
    cache_dir : path-like, optional
        The logit cache (default: ``.ensemble/cache`` beside ``ensemble.toml``, else here).
    training : TrainingFolds, optional
        The training split and its folds (:mod:`ensemble.workflows.foldgroups`): where fold groups have
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
    task : str, optional
        "classification", "regression" or "multi_label": the task every member is read as, over
        the one its head suggests (a multi-label model saved without its problem_type).
    targets : sequence of str, optional
        Regression and multi-label: the label columns (``label = [...]``). A member whose head
        does not name its outputs (``LABEL_0``...) needs them named (``outputs``); one output is
        always the one label column.
    outputs : mapping of member name to sequence of str, optional
        Regression and multi-label: the label column of each of a member's outputs, in its head's
        order, for a head that does not name them (checked against the head and the columns).
    """

    def __init__(self, members, cache_dir: str | os.PathLike | None = None, training=None,
                 refit: Mapping[str, str] | None = None, *, inference=None, class_order=None, task=None,
                 targets: Sequence[str] | None = None, outputs: Mapping[str, Sequence[str]] | None = None):
        from ensemble.inference.cache import OutputCache
        from ensemble.inference.settings import InferenceSettings
        from ensemble.workflows.foldgroups import GroupRef

        self.inference = InferenceSettings.of(inference)
        self.class_order = _class_order(class_order)

        self.members = resolve_members(members, None if training is None else training.k)
        refit = dict(refit or {})
        check_refit(self.members, refit)
        self.cache = OutputCache(cache_dir)
        self.training = training
        refs = [GroupRef.open(m, task) if m.is_fold_group else open_member(m.folder, m.name, task)
                for m in self.members]
        self.refs = [r for r in refs if r.name not in refit]
        by_name = {r.name: r for r in refs}
        self.refits = {group: by_name[name] for name, group in refit.items()}
        self.members = [m for m in self.members if m.name not in refit]
        self.task = shared_task((r.name, r.task) for r in refs)
        self.targets = None if targets is None else ((targets,) if isinstance(targets, str) else tuple(targets))
        self.outputs = {str(k): tuple(v) for k, v in (outputs or {}).items()}
        self.applied: dict[str, tuple] = {}  # member -> the mapping said and applied (a head without names)
        # a fold model's outputs go by its group's names
        self._group_of = {p.name: r.name for r in refs if r.kind == "folds" for p in r.parts}
        unknown = sorted(set(self.outputs) - {r.name for r in refs})
        if unknown:
            raise EnsembleError(f"outputs names {unknown[0]!r}, which is not a member ({', '.join(r.name for r in refs)}); "
                                "name the member whose outputs it names")
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
        from ensemble.estimates.store import EstimateStore

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
        mean on any other (:mod:`ensemble.workflows.foldgroups`)."""
        if ref.kind == "folds":
            return ref.logits(self.logits, split, self.training)
        from ensemble.inference.settings import settings_difference

        model_digest = self.digest_of(ref)
        cache = self.cache
        forward = _forward_settings(ref.task, split, ref.folder, cache.file_digest)  # as predict runs it
        mine = [e for e in self.entries if e.damaged is None and e.metadata.get("model_digest") == model_digest
                and e.metadata.get("data_digest") == split.digest and e.payload == ref.task.payload]
        entries = [e for e in mine if all(e.settings.get(k) == v for k, v in forward.items())]
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
                from dataclasses import replace

                if lg.kind == "ragged":  # the cache holds a unit no token covered as zeros
                    from ensemble.inference.forwards import uncovered_as_nan

                    lg = uncovered_as_nan(lg)
                return replace(lg, model=ref.name, split=split.name, meta={**lg.meta, "key": entry.key})
        broken = [e for e in self.entries if e.damaged is not None]  # unreadable: whose they are is unknown
        if problems:
            damaged = f" (a damaged entry was removed: {problems[0]})"
        elif others:
            damaged = (f" with these inference settings (it has {len(others)} entr{'y' if len(others) == 1 else 'ies'} "
                       f"of other settings: {others[0]}; ask for those, or predict with these)")
        elif near := _other_forward(mine, forward):
            gen = ref.task.forward == "generation"  # its settings are --generate's; the tokens forward's, words or stride
            damaged = (f" with these {'generate' if gen else ref.task.forward + ' forward'} settings (it has an entry of "
                       f"{near}; ask for those{' with --generate' if gen else ''}, or predict with these)")
        elif broken:
            damaged = (f" ({len(broken)} damaged cache entr{'y' if len(broken) == 1 else 'ies'}, e.g. {broken[0].path.name}: "
                       f"{broken[0].damaged}; it may have been this one)")
        else:
            damaged = " (or they are stale)"
        project = in_project()
        if project is not None:  # one command computes every member's logits: name it, not this member's
            fix = (f"run ensemble predict (it reads {project} and computes what is missing) or ensemble run"
                   if _project_member(ref.name) else
                   f"run ensemble predict --model {ref.name}={ref.folder} (it is not a member of {project}: a bare "
                   "ensemble predict computes the project's members only)")
        elif fix is None:
            fix = (f"run: ensemble predict --model {ref.name}={ref.folder} --data {split.name}={split.path}"
                   + (f" --cache-dir {cache.root}" if cache.root != _default_root() else ""))
        else:
            fix += f" --cache-dir {cache.root}" if cache.root != _default_root() else ""
        what = "generations" if ref.task.payload == "texts" else "logits"
        raise EnsembleError(f"model {ref.name} has no cached {what} for {split.path}{damaged}; {fix}")

    def aligned(self, split, labels: Sequence[str] | None = None, refit: bool = False) -> Aligned:
        """Every model's logits over ``split`` (a :class:`~ensemble.data.splits.Split`), aligned in the
        split's row order and in ``labels`` (default: the first model's) class order, with ``y``
        when the split is labelled. ``refit``: each fold group with a full-data refit gives way
        to it (on the test split)."""
        self.task.check_split_settings(split)  # a setting of another task's is refused, never ignored
        refs = [self.refits.get(r.name, r) if refit else r for r in self.refs]
        logits = [self.named(self.logits(r, split)) for r in refs]
        if self.class_order is not None and set(self.class_order) != set(logits[0].labels):
            raise EnsembleError(f"class_order {','.join(self.class_order)} does not name the members' classes "
                                f"({', '.join(sorted(logits[0].labels))}); name each of them once")
        al = self.task.align(logits, ids=split.ids, labels=labels)
        if split.labels is not None:
            al.y = self.task.truth(split, al.labels, self.refs[0].name, lambda: self._index_order(split, logits))
        al.logits = logits
        return al

    def named(self, lg):
        """Regression and multi-label outputs named by the label columns where the head does not
        name them: the one label column, or the names the user gave (:attr:`outputs`); several
        unnamed outputs without them are an error (:meth:`~ensemble.tasks.base.Task.output_names`)."""
        from dataclasses import replace

        said = self.outputs.get(lg.model, self.outputs.get(self._group_of.get(lg.model)))
        t = self.task.output_names(lg.labels, self.targets, said, lg.model)
        if t is None:
            return lg
        if said is not None:
            self.applied[lg.model] = t  # recorded with the weights: a file fitted under another mapping is stale
        return replace(lg, labels=t)

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


def training_of(inputs: Inputs):
    """The training split and its folds of ``inputs`` (a
    :class:`~ensemble.workflows.foldgroups.TrainingFolds`), or None without a folds file."""
    return training_folds(inputs.data, inputs.folds, inputs.train, inputs.columns, inputs.fold_column)


def source_of(inputs: Inputs, training=None, members=None) -> CachedOutputs:
    """The cached logits of ``inputs``' members (or ``members``, resolved already)."""
    return CachedOutputs(inputs.members if members is None else members, inputs.cache_dir, training, inputs.refit,
                        inference=inputs.inference, class_order=inputs.class_order, task=inputs.task,
                        targets=inputs.columns.get("label") if not inputs.columns.get("label_sep") else None,
                        outputs=inputs.outputs)


def gather(models: Mapping[str, str | os.PathLike] | Inputs, data: Mapping[str, object] | object = None,
           split: str = "valid", *, cache_dir: str | os.PathLike | None = None, columns: Mapping | None = None, folds=None,
           fold_column: str | None = None, train: str = "train", inference=None, class_order=None,
           task: str | None = None, outputs: Mapping[str, Sequence[str]] | None = None) -> Aligned:
    """The members' cached logits over one split, aligned by class name and row id, with the
    true class indices: what :func:`~ensemble.tasks.classification.weighting.fit_weights`,
    :func:`~ensemble.tasks.classification.estimate.cross_validate` and the class-prior functions take.

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
    inference, class_order, task, outputs
        As for :func:`vote`.

    Returns
    -------
    Aligned
        ``arrays`` (M arrays, n x C), ``y`` (n class indices, None when the split is unlabelled;
        regression and multi-label: the true values, n x T, in the outputs' column order),
        ``labels`` (class names), ``ids``, ``models``, ``logits`` (the Logits read).

    Examples
    --------
    >>> al = gather({"a": "weights/a-top4", "b": "weights/b-top4"}, {"valid": "data/valid.csv"})
    >>> fit_weights(al.arrays, al.y, "optimize", names=al.models)
    """
    if isinstance(models, Inputs) and isinstance(data, str):  # gather(inputs, "test")
        data, split = None, data
    if not isinstance(models, Inputs) and data is not None and not isinstance(data, Mapping):
        data = {split: data}  # one data file: that split
    inputs = Inputs.of(models, data, columns=columns, folds=folds, fold_column=fold_column, train=train,
                       cache_dir=cache_dir, inference=inference, class_order=class_order, task=task, outputs=outputs)
    data, columns = inputs.data, inputs.columns
    if split not in data:
        raise EnsembleError(f"no {split!r} split given; pass data={{{split!r}: PATH}}, got {', '.join(data) or 'none'}")
    if not inputs.members:
        raise EnsembleError("no model given; pass a mapping of member names to model folders")
    training = training_of(inputs)
    data = with_training(data, inputs.train, training)
    source = source_of(inputs, training)
    check_fold_groups(source, training, None if split == inputs.train else split)
    return source.aligned(open_split(data[split], split, columns))




def _forward_settings(task, split, folder, digest) -> dict:
    """The settings a cache entry of ``task``'s member in ``folder`` over ``split`` must have been
    computed with, beyond the inference settings: its forward's own, as predict runs it over that
    split (none for the sequence forward; the tokens forward's words when the split holds words;
    generation's settings and the digest of the folder's ``generation_config.json``)."""
    from ensemble.inference.forwards import entry_settings, split_forward

    return entry_settings(split_forward(task.forward, split), folder, digest)


def _other_forward(entries, forward: Mapping) -> str | None:
    """The first difference, in words (``num_beams 3, not 4``), from ``forward``'s settings of one
    of ``entries`` (this model's over this split) computed with other forward settings; None when
    there is none."""
    for e in entries:
        diff = next((k for k, v in forward.items() if e.settings.get(k) != v), None)
        if diff is not None:
            said = [("unset" if v is None else v) for v in (e.settings.get(diff), forward[diff])]
            return f"{diff} {said[0]}, not {said[1]}"
    return None


def _project_member(name: str) -> bool:
    """Whether ``name`` (a model, or a fold model ``<group>-fold<k>``) is a member of the project
    file the command reads (True when it did not say)."""
    import re

    names = project_members()
    if names is None:
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
    from ensemble.inference.cache import default_cache_dir

    return default_cache_dir()


def training_folds(data: Mapping, folds, train: str, columns: Mapping, fold_column: str | None = None):
    """The training split and its folds (:class:`~ensemble.workflows.foldgroups.TrainingFolds`) when
    ``folds`` is given, else None; a one-line error when the training split is missing."""
    if folds is None:
        return None
    from ensemble.workflows.foldgroups import open_training_folds

    if train not in data:
        raise EnsembleError(f"{flag('folds', folds)} splits the training file: {data_fix(train)} (the labelled file "
                            "the fold models were trained on)")
    split = open_split(data[train], train, columns)
    return open_training_folds(split, folds, fold_column=fold_column, encoding=columns.get("encoding"))


def with_training(data: Mapping, train: str, training) -> Mapping:
    """``data`` with the training split as read for its folds, so that it is read once."""
    return data if training is None else {**data, train: training.split}


def _refit_said(name: str, group: str) -> str:
    """Where a refit was given, in the words of the face: the flag, the keyword or the key."""
    from ensemble.core.errors import cli_face

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


def check_fold_groups(source: CachedOutputs, training, valid: str | None = None) -> bool:
    """Whether the members are fold groups, then fitted on their out-of-fold rows. A fold group
    needs the folds. Fold groups and models have no training rows in common: with a validation
    split ``valid`` (a split name, None when there is none) every member is fitted there, the
    fold groups as their fold means (said in the log); without one, an error naming which member
    is which."""
    groups = source.fold_groups
    if not groups:
        if training is not None:
            log.warning("%s: no member is a fold group (a path with {fold}); the folds are not used",
                        flag("folds", training.folds.path))
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
                            f"out-of-fold rows, models none); {data_fix('valid')} to fit every member there (the fold "
                            "groups as their fold means), or ensemble fold groups alone, or models alone")
    if training is None:
        raise EnsembleError(f"member {groups[0]} is a fold group; {folds_fix()} (its fold models' held-out rows)")
    return True
