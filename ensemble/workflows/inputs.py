"""What a workflow reads, apart from how it fits: the members, the data, its columns, the folds
and refits of fold groups, the cache and the inference settings whose entries are read.

:func:`~ensemble.workflows.vote.vote`, :func:`~ensemble.workflows.report.report`,
:func:`~ensemble.workflows.gather.gather` and :func:`~ensemble.workflows.predict.predict` take
their inputs as keyword arguments (a notebook cell stays short) or as one :class:`Inputs`; the
CLI builds the same object from its flags or the project file, and ``ensemble run`` from
``ensemble.toml``. The fitting settings are the procedure's
(:class:`~ensemble.tasks.classification.procedure.Procedure`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields, replace
from typing import Mapping, Sequence

from ensemble.core.errors import EnsembleError

__all__ = ["Inputs"]


@dataclass(frozen=True)
class Inputs:
    """The members and data of one ensemble, checked up front.

    Parameters
    ----------
    members : mapping of name to model folder, or list of Member
        The members (``DIR@top3`` expands to a sweep's best trials; ``runs/bert-fold{fold}`` is a
        fold group).
    data : mapping of split name to data file or Split
        ``valid``, ``test``, and ``train`` for fold groups.
    columns : mapping, optional
        Column options of :func:`~ensemble.data.splits.load_split` (``id``, ``text``, ``label``,
        ``encoding``, ``quoting``...).
    folds : path-like or Folds, optional
        The K-fold assignment of ``data[train]`` that fold groups were trained on.
    fold_column : str, optional
        The folds file's fold column.
    train : str, default "train"
        The training split's name in ``data``.
    refit : mapping of member name to fold group name, optional
        Full-data refits, each taking its fold group's place on test.
    cache_dir : path-like, optional
        The logit cache (default: ``.ensemble/cache`` beside ``ensemble.toml``, else here).
    inference : InferenceSettings or mapping, optional
        The inference settings whose cache entries are read.
    class_order : str or sequence of str, optional
        The class of each index, for labels given as class indices.
    task : {"classification", "regression", "multi_label"}, optional
        The task of every member, over the one its ``config.json`` suggests (default: detected
        from ``problem_type`` and the number of outputs).
    outputs : mapping of member name to sequence of str, optional
        Regression and multi-label: the label column of each of a member's outputs, in its head's
        order, for a member whose head does not name them (``id2label`` is ``LABEL_0``...).
    """

    members: object
    data: Mapping = field(default_factory=dict)
    columns: Mapping = field(default_factory=dict)
    folds: object = None
    fold_column: str | None = None
    train: str = "train"
    refit: Mapping = field(default_factory=dict)
    cache_dir: str | os.PathLike | None = None
    inference: object = None
    class_order: str | Sequence[str] | None = None
    task: str | None = None
    outputs: Mapping = field(default_factory=dict)

    def __post_init__(self):
        if isinstance(self.members, Inputs):
            raise EnsembleError("members: got an Inputs; pass it as the first argument alone")
        if not isinstance(self.data, Mapping):
            raise EnsembleError("data must map split names to data files, e.g. {'valid': 'data/valid.csv', 'test': "
                                f"'data/test.csv'}}; got {type(self.data).__name__} {str(self.data)[:80]!r}")
        object.__setattr__(self, "columns", dict(self.columns or {}))
        object.__setattr__(self, "refit", dict(self.refit or {}))
        object.__setattr__(self, "data", dict(self.data))
        object.__setattr__(self, "outputs", _outputs(self.outputs))
        if self.task is not None:
            from ensemble.tasks import task_named

            object.__setattr__(self, "task", task_named(self.task).name)

    @classmethod
    def of(cls, members, data=None, **given) -> Inputs:
        """``members`` when it is an Inputs already (``given`` values that are not None replace
        its own), else an Inputs of these arguments. Names that are not inputs are an error."""
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(given) - names)
        if unknown:
            raise EnsembleError(f"not an input: {', '.join(unknown)}; inputs are {', '.join(sorted(names))}")
        if isinstance(members, Inputs):
            changes = {k: v for k, v in given.items() if v is not None and v != {} and v != ()}
            if data is not None:
                changes["data"] = data
            return replace(members, **changes) if changes else members
        return cls(members, {} if data is None else data,
                   **{k: v for k, v in given.items() if v is not None})


def _outputs(value) -> dict[str, tuple[str, ...]]:
    """``outputs`` checked: each member's output names, a list of distinct names (or "a,b")."""
    if not value:
        return {}
    if not isinstance(value, Mapping):
        raise EnsembleError(f"outputs must map a member's name to its output names, e.g. {{'sts-b': ['similarity', "
                            f"'agreement']}}; got {type(value).__name__} {str(value)[:80]!r}")
    out = {}
    for name, names in value.items():
        if isinstance(names, str):
            names = [n.strip() for n in names.split(",")]
        if (not isinstance(names, (list, tuple)) or not names
                or not all(isinstance(n, str) and n.strip() for n in names)):
            raise EnsembleError(f"outputs of {name}: expected a list of label column names, one per output in its "
                                f"head's order; got {names!r}")
        out[str(name)] = tuple(n.strip() for n in names)
    return out
