"""The task interface: what one kind of model outputs, and how those outputs are aligned,
combined, scored, turned into predictions and submitted.

The workflows (gather, vote, report) and the estimates ask the member's task instead of
assuming class logits, so a new kind (regression, multi-label, token classification,
generation) is a new module beside :mod:`ensemble.tasks.classification`, registered in
:mod:`ensemble.tasks`. docs/architecture.md describes the interface with the layer picture.
"""

from __future__ import annotations

import abc
from typing import Mapping, Sequence

import numpy as np


class Task(abc.ABC):
    """One kind of model output and everything that depends on it.

    Attributes
    ----------
    name : str
        The task's name, as ``task =`` in ``ensemble.toml`` will spell it ("classification").
    heads : tuple of str
        The head kinds (:attr:`ensemble.io.modelfiles.Head.kind`) whose outputs this task reads.
    output : str
        What inference caches for a model of this task ("logits": an (n, C) array with the class
        names).
    combine_rules : tuple of str
        The combination rules that apply; the first is the default.
    methods : tuple of str
        The weight methods that apply (``best<K>`` aside).
    metrics : tuple of str
        The metrics reported; ``metrics[0]`` is the primary one, the one ``auto`` decides on.
    """

    name: str
    heads: tuple[str, ...]
    output: str
    combine_rules: tuple[str, ...]
    methods: tuple[str, ...]
    metrics: tuple[str, ...]

    @property
    def primary(self) -> str:
        """The metric estimates and ``auto`` decide on."""
        return self.metrics[0]

    def runs(self, head) -> bool:
        """Whether a model with this head (an :class:`~ensemble.io.modelfiles.Head`) is a member of
        this task."""
        return head.kind in self.heads

    @abc.abstractmethod
    def greater_is_better(self, metric: str) -> bool:
        """Whether a higher ``metric`` is better."""

    @abc.abstractmethod
    def metric_value(self, metric: str, proba: np.ndarray, y: np.ndarray) -> float:
        """``metric`` of combined outputs ``proba`` (n, C) against the truth ``y`` (n,)."""

    @abc.abstractmethod
    def align(self, outputs: Sequence, ids: Sequence[str] | None = None, labels: Sequence[str] | None = None):
        """The members' outputs in one row order (``ids``) and one order of names (``labels``):
        an :class:`~ensemble.core.combination.Aligned`."""

    @abc.abstractmethod
    def combine(self, arrays: Sequence[np.ndarray], weights: Sequence[float] | None = None, rule: str | None = None
                ) -> np.ndarray:
        """The weighted combination of aligned outputs under ``rule`` (default: the first of
        :attr:`combine_rules`)."""

    @abc.abstractmethod
    def predict(self, proba: np.ndarray, labels: Sequence[str]) -> np.ndarray:
        """Combined outputs (n, C) as predictions (n,), in the names ``labels``."""

    @abc.abstractmethod
    def submission(self, ids: Sequence[str], proba: np.ndarray, labels: Sequence[str], **options: Mapping):
        """The submission as a DataFrame, in the sample submission's format when one is given;
        nothing written (:func:`ensemble.workflows.submission.write_submission` writes it)."""

    def fold_mean(self, arrays: Sequence[np.ndarray]) -> np.ndarray:
        """A fold group's outputs on a split every fold model predicted, from theirs (aligned), in
        the space the cache holds (classification: the log of the mean probability)."""
        raise NotImplementedError

    def check_labels(self, split, names: Sequence[str], model: str) -> None:
        """Refuse, before any model runs, labels of ``split`` that do not fit this task's outputs
        ``names`` (a one-line error naming the file and the column)."""

    def __repr__(self) -> str:
        return f"<task {self.name}: {self.output} of {', '.join(self.heads)} heads, primary metric {self.primary}>"


