"""A member of the ensemble: a name and where its logits come from, resolved once and used by
vote, report and ``ensemble run`` alike.

Today a member is a model folder (a checkpoint, an average, or one trial of a sweep named
``DIR@top3``); a fold group or a full-data refit will be members of other kinds.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping, Union

from .errors import NAME_RULE, EnsembleError, is_name

__all__ = ["Member", "resolve_members"]


@dataclass(frozen=True)
class Member:
    """One member of the ensemble.

    Attributes
    ----------
    name : str
        Its name in outputs (weights files, sidecars, reports): :data:`ensemble.errors.NAME_RULE`.
    folder : Path
        The model folder whose cached logits it contributes.
    kind : str, default "model"
        Where its logits come from: "model" (one model folder's logits on each split).
    """

    name: str
    folder: Path
    kind: str = "model"


MembersLike = Union[Mapping[str, Union[str, os.PathLike]], Iterable[Member]]


def resolve_members(members: MembersLike) -> list[Member]:
    """Members from a mapping of names to model folders (``DIR@top3`` expanded to the best
    checkpoint of each of a sweep's 3 best trials), or Members already resolved (kept as they
    are). Names are checked; a name given twice is an error naming it."""
    if isinstance(members, Mapping):
        from .sweep import expand_members

        resolved = [Member(name, Path(folder)) for name, folder in expand_members(members).items()]
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
    return resolved
