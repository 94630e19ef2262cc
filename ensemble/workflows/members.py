"""A member of the ensemble: a name and where its logits come from, resolved once and used by
vote, report and ``ensemble run`` alike.

A member is a model folder (a checkpoint, an average, or one trial of a sweep named
``DIR@top3``), or a fold group: K models of a K-fold training run, fold model k trained without
the rows of fold k, named by a path holding ``{fold}`` (``runs/bert-fold{fold}``) or by the list
of their K folders in fold order. A full-data refit is a model member that takes its fold group's
place on test (``refit=`` of :func:`~ensemble.workflows.vote.vote`).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping, Union

from ensemble.core.errors import NAME_RULE, EnsembleError, folds_fix, is_name

__all__ = ['FOLD', 'Member', 'resolve_members', 'is_fold_template', 'fold_path']

# what a fold group's path holds where the fold number goes
FOLD = "{fold}"


@dataclass(frozen=True)
class Member:
    """One member of the ensemble.

    Attributes
    ----------
    name : str
        Its name in outputs (weights files, sidecars, reports): :data:`ensemble.core.errors.NAME_RULE`.
    folder : Path
        The model folder whose cached logits it contributes; for a fold group, the path as given
        (``runs/bert-fold{fold}``, or the first fold's folder).
    kind : str, default "model"
        Where its logits come from: "model" (one model folder's logits on each split) or "folds"
        (a fold group: out-of-fold logits on the training rows, the fold mean elsewhere).
    parts : tuple of Path
        A fold group's model folders, fold 0 first; empty for a model.
    """

    name: str
    folder: Path
    kind: str = "model"
    parts: tuple[Path, ...] = ()

    @property
    def is_fold_group(self) -> bool:
        return self.kind == "folds"


def fold_path(template, i: int) -> Path:
    """Fold ``i``'s folder: ``template`` with its ``{fold}`` replaced by ``i``."""
    return Path(os.fspath(template).replace(FOLD, str(i)))


def is_fold_template(path) -> bool:
    """Whether ``path`` names a fold group: a path holding ``{fold}`` or a list of folders."""
    return isinstance(path, (list, tuple)) or FOLD in os.fspath(path)


def _fold_group(name: str, spec, k: int | None) -> Member:
    """A fold group's Member: its K folders, each checked to exist (the missing one named)."""
    if isinstance(spec, (list, tuple)):
        parts = tuple(Path(p) for p in spec)
        if len(parts) < 2:
            raise EnsembleError(f"member {name}: a fold group lists 2 model folders or more (one per fold, in fold "
                                f"order); got {len(parts)}")
        if k is not None and len(parts) != k:
            raise EnsembleError(f"member {name}: lists {len(parts)} fold models but the folds file has {k} folds; give "
                                "one model folder per fold, in fold order")
        template = parts[0]
    else:
        if k is None:
            raise EnsembleError(f"member {name} ({spec}) is a fold group; {folds_fix(with_data=False)} (the folds its "
                                "models were trained on)")
        template = Path(spec)
        parts = tuple(fold_path(spec, i) for i in range(k))
    for i, folder in enumerate(parts):
        if not folder.is_dir():
            raise EnsembleError(f"{folder}: fold {i} of member {name} ({len(parts)} folds) does not exist; train it, or "
                                "fix the path (fold numbers run 0..k-1, as in the folds file)")
    _check_fold_order(name, spec, parts)
    return Member(name, template, "folds", parts)


_FOLD_NUMBER = re.compile(r"fold[-_]?(\d+)", re.IGNORECASE)


def _check_fold_order(name: str, spec, parts: tuple[Path, ...]) -> None:
    """Leaks that the folders themselves show: a folder listed twice; a folder whose name says
    another fold than its place (``-fold1`` listed first would score fold 0's rows with a model
    trained on them); with ``{fold}``, a folder for fold K beside a folds file of K folds (its
    model, and the rows of its fold, would be dropped in silence)."""
    resolved = [p.resolve() for p in parts]
    twice = next((i for i, p in enumerate(resolved) if resolved.index(p) != i), None)
    if twice is not None:
        raise EnsembleError(f"{parts[twice]}: listed as folds {resolved.index(resolved[twice])} and {twice} of member "
                            f"{name}; each fold has its own model, trained without that fold's rows")
    depth = min(len(p.parts) for p in parts)  # the names that differ between the folders say their folds
    varying = [j for j in range(1, depth + 1) if len({p.parts[-j] for p in parts}) > 1]
    for i, folder in enumerate(parts):
        numbers = [int(m.group(1)) for j in varying for m in _FOLD_NUMBER.finditer(folder.parts[-j])]
        if numbers and i not in numbers:
            raise EnsembleError(f"{folder}: its name says fold {numbers[-1]} but it is fold {i} of member {name}; list "
                                "the fold models in fold order (fold 0 first), as the folds file numbers them")
    if not isinstance(spec, (list, tuple)) and fold_path(spec, len(parts)).is_dir():
        raise EnsembleError(f"{fold_path(spec, len(parts))}: a fold {len(parts)} of member {name} exists, but the folds "
                            f"file has {len(parts)} folds (0..{len(parts) - 1}); pass the folds file its models were "
                            "trained on")


MembersLike = Union[Mapping[str, Union[str, os.PathLike]], Iterable[Member]]


def resolve_members(members: MembersLike, k: int | None = None) -> list[Member]:
    """Members from a mapping of names to model folders (``DIR@top3`` expanded to the best
    checkpoint of each of a sweep's 3 best trials; a path with ``{fold}`` or a list of folders
    a fold group of ``k`` folds, ``k`` being the folds file's), or Members already resolved
    (kept as they are). Names are checked; a name given twice is an error naming it; fold
    groups of different K are an error naming two of them."""
    if isinstance(members, Mapping):
        from ensemble.averaging.sweeps import expand_members

        resolved = [_fold_group(name, spec, k) if is_fold_template(spec) else Member(name, Path(spec))
                    for name, spec in expand_members(members).items()]
    else:
        resolved = list(members)
        if not all(isinstance(m, Member) for m in resolved):
            raise EnsembleError("members must be a mapping of names to model folders, or Member objects")
    names = [m.name for m in resolved]
    bad = next((n for n in names if not is_name(n)), None)
    if bad is not None:
        raise EnsembleError(f"member name {bad!r} must be {NAME_RULE}")
    twice = next((n for n in names if names.count(n) > 1), None)
    if twice is not None:
        raise EnsembleError(f"member name {twice!r} is given twice; give each member its own name")
    groups = [m for m in resolved if m.is_fold_group]
    other = next((m for m in groups if len(m.parts) != len(groups[0].parts)), None)
    if other is not None:
        g = groups[0]
        raise EnsembleError(f"fold groups {g.name} ({len(g.parts)} folds) and {other.name} ({len(other.parts)} folds) "
                            "differ in K; fold groups in one ensemble are trained on the same folds")
    return resolved
