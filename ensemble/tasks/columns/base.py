"""What regression and multi-label classification share: members whose outputs are one column
per target (or label) that is read as it is, never through a softmax; the truth as an (n, T)
array read from one label column per target (matched to the head's outputs by name, else by
position); and metrics built from per-row statistics, so that a metric and every bootstrap
resample of it are one matrix product.

:class:`Metric` is the contract: ``stats(pred, y)`` gives an (n, k) array of row statistics,
``finish(S, N)`` turns their sums ``S`` (..., k) over ``N`` (...) rows into the metric. The value
on the rows is ``finish(stats.sum(0), n)``; on a bootstrap resample with row counts ``W`` (B, n),
``finish(W @ stats, W.sum(1))``.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from ensemble.core.combination import align, generic_names
from ensemble.core.errors import EnsembleError, option, outputs_fix
from ensemble.tasks.base import Task

log = logging.getLogger(__name__)

__all__ = ["Metric", "ValueTask", "match_names", "nfc", "sample_columns"]



@dataclass(frozen=True)
class Metric:
    """A metric from row statistics (see the module's docstring).

    Attributes
    ----------
    name : str
    greater : bool
        Whether a higher value is better.
    stats : callable (pred (n, T), y (n, T)) -> (n, k)
    finish : callable (S (..., k), N (...)) -> (...)
    decided : bool
        Whether it scores decisions (multi-label 0/1 after the threshold) rather than outputs.
    """

    name: str
    greater: bool
    stats: Callable
    finish: Callable
    decided: bool = False

    def __call__(self, pred: np.ndarray, y: np.ndarray) -> float:
        s = self.stats(np.asarray(pred, dtype=np.float64), np.asarray(y, dtype=np.float64))
        return float(self.finish(s.sum(axis=0), np.float64(len(s))))

    def resampled(self, stats: np.ndarray, counts: np.ndarray) -> np.ndarray:
        """The metric on each bootstrap resample: ``counts`` (B, n) row counts."""
        return np.asarray(self.finish(counts @ stats, counts.sum(axis=1).astype(np.float64)), dtype=np.float64)


def nfc(name) -> str:
    """A label's or target's name in Unicode NFC, the form names are compared in."""
    import unicodedata

    return unicodedata.normalize("NFC", str(name))


def sample_columns(path, columns: Sequence[str], names: Sequence[str], *, what: str, fix: str) -> dict:
    """For each output name, the sample submission's column that takes it: names compared in NFC,
    written as the sample spells them. An output with no column, or a column no output fills (it
    would be submitted as the sample's placeholder), is a one-line error naming it (``what``: the
    outputs' noun; ``fix``: the sample to pass instead)."""
    actual = {nfc(c): c for c in columns}
    missing = [n for n in names if nfc(n) not in actual]
    if missing:
        raise EnsembleError(f"{path}: no column {missing[0]!r} for the {what} {missing[0]} (its columns after the id: "
                            f"{', '.join(map(str, columns))}); pass the competition's sample submission, {fix}")
    predicted = {nfc(n) for n in names}
    unpredicted = [c for c in columns if nfc(c) not in predicted]
    if unpredicted:
        raise EnsembleError(f"{path}: no member predicts its column {unpredicted[0]!r} (the {what}s: "
                            f"{', '.join(map(str, names))}); it would be submitted as the sample's placeholder: add a "
                            "member for it, or drop the column if the competition does not score it")
    return {n: actual[nfc(n)] for n in names}


def match_names(columns: Sequence[str], names: Sequence[str], *, path, model: str, what: str) -> list[int]:
    """For each of the head's outputs ``names``, the index of its label column in ``columns``:
    by name when the head names its outputs (``id2label``), else by position (``predict``'s check
    of the counts; :class:`~ensemble.workflows.gather.CachedOutputs` names such outputs from the
    mapping the user said, or refuses them). A label column set that does not fit is a one-line
    error."""
    # NFC on both sides, as classes are compared: a header typed on macOS (NFD Hangul) names the same label
    columns, names = [nfc(c) for c in columns], [nfc(n) for n in names]
    if len(columns) != len(names):
        raise EnsembleError(f"{path}: {len(columns)} label column(s) ({', '.join(columns)}) for {model}'s "
                            f"{len(names)} {what}(s) ({', '.join(names[:6])}); {option('label', ','.join(names[:3]))} "
                            f"with one column per {what}")
    if len(names) == 1:
        return [0]
    if generic_names(names):  # by position: the counts fit; gather names them or refuses
        return list(range(len(names)))
    missing = [n for n in names if n not in columns]
    if missing:
        raise EnsembleError(f"{path}: {model}'s {what} {missing[0]!r} (id2label) is not a label column "
                            f"({', '.join(columns)}); name the label columns as its id2label does")
    return [columns.index(n) for n in names]


class ValueTask(Task):
    """A task whose outputs are one column per target or label, combined column by column.

    Attributes beside :class:`~ensemble.tasks.base.Task`'s: ``said`` (the task in messages),
    ``thresholded`` (outputs decided at a threshold, fitted or given), ``clips`` (outputs may be
    clipped to the training labels' range), ``decomposes`` (the fold mean's squared error
    decomposes into out-of-fold error minus ambiguity)."""

    output = "outputs"
    metric_table: dict[str, Metric] = {}
    what = "target"
    said = "column"
    thresholded = False
    clips = False
    decomposes = False
    members_noun = "regression or multi-label members"
    weights_formats = ("ensemble.value-weights/1",)

    def check_settings(self, *, threshold, clip) -> None:
        """A threshold for outputs that are not decided at one, or clipping of outputs that are not
        clipped, refused with the reason."""
        from ensemble.core.errors import flag

        if not self.thresholded and threshold not in (None, "global"):
            raise EnsembleError(f"{flag('threshold', threshold)} decides multi-label outputs; these members are "
                                f"{self.name}: drop it")
        if clip and not self.clips:
            raise EnsembleError(f"{flag('clip')} clips regression outputs; these members are {self.said}: drop it")

    def own_decisions(self, outputs: np.ndarray) -> np.ndarray:
        """One member's outputs (n, T) as it is scored on its own: the values (multi-label:
        decided at 0.5)."""
        return outputs

    def member_row(self, outputs: np.ndarray, y: np.ndarray) -> dict:
        """One member's metrics on its own outputs (n, T) for the report's table."""
        row = {m: self.metric(m)(self.own_decisions(outputs), y) for m in self.metrics}
        row.update(mean=float(np.mean(outputs)), std=float(np.std(outputs)))
        return row

    def metric(self, name: str) -> Metric:
        if name not in self.metric_table:
            raise EnsembleError(f"unknown {self.name} metric {name!r}; use {', '.join(self.metric_table)}")
        return self.metric_table[name]

    def greater_is_better(self, metric: str) -> bool:
        return self.metric(metric).greater

    def default_metric(self, targets: int) -> str:
        return self.primary

    def align(self, outputs, ids=None, labels=None):
        return align(outputs, ids=ids, labels=labels)

    def fold_mean(self, arrays: Sequence[np.ndarray]) -> np.ndarray:
        """A fold group's output on a split every fold model predicted: the mean of their outputs."""
        return np.mean([np.asarray(a, dtype=np.float64) for a in arrays], axis=0)

    def names(self, split, names: Sequence[str], model: str) -> tuple[str, ...]:
        """The outputs' names as submitted: the head's own when it names them, else the label
        columns (matched by position)."""
        if not generic_names(names):
            return tuple(map(str, names))
        cols = split.label_columns if split is not None and split.label_columns else ()
        if len(cols) == len(names) and len(cols) > 1 or (len(names) == 1 and len(cols) == 1):
            return tuple(cols)
        return tuple(map(str, names))

    def truth(self, split, labels, model, index_order):
        return self.targets(split, labels, model)

    def output_names(self, names, columns, declared=None, model=""):
        """A head that names its outputs (``id2label``) keeps its names, and ``declared`` must
        agree with them; one unnamed output is the one label column; several unnamed outputs
        take the names ``declared`` (said once by the user, checked here against the head and
        the label columns), and without them are an error: matched by position, reordering the
        label columns would move every output to another target."""
        names = tuple(map(str, names))
        t = tuple(columns or ())
        generic = generic_names(names)
        def fix() -> str:  # names no column for an output: a guess by position is what this refuses
            return outputs_fix(model, [f"<column of {n}>" for n in names])

        if declared is not None:
            d = tuple(nfc(str(x)) for x in declared)
            if len(d) != len(names) or len(set(d)) != len(d):
                raise EnsembleError(f"{model}: outputs = {', '.join(d)} must name each of its {len(names)} outputs "
                                    f"once, in its head's order; {fix()}")
            if not generic and d != tuple(nfc(n) for n in names):
                raise EnsembleError(f"{model}: outputs = {', '.join(d)} contradicts its head, whose id2label names its "
                                    f"outputs {', '.join(names)}; drop outputs (the head's names decide)")
            missing = [x for x in d if t and x not in {nfc(c) for c in t}]
            if missing:
                raise EnsembleError(f"{model}: outputs names {missing[0]!r}, which is not a label column "
                                    f"({', '.join(t)}); {fix()}")
            return d if generic else None
        if not generic or not t or tuple(names) == t:
            return None
        if len(names) != len(t):
            return None  # the label columns do not fit: match_names says so, with the counts
        if len(names) == 1:
            return t
        raise EnsembleError(f"{model} does not name its outputs (id2label is {', '.join(names[:2])}...): say once which "
                            f"label column ({', '.join(t)}) each is, in its head's order (the order it was trained "
                            f"with): {fix()}")

    def check_labels(self, split, names: Sequence[str], model: str) -> None:
        """A label column that does not fit the task, refused before any model runs."""
        self.targets(split, names, model)


def finite_floats(values: np.ndarray, columns: Sequence[str], path) -> np.ndarray:
    """Label cells as floats, (n, T): a cell that is not a number, NaN or infinite is a one-line
    error naming its column and row."""
    out = np.empty(values.shape, dtype=np.float64)
    for j, col in enumerate(columns):
        for i, v in enumerate(values[:, j]):
            try:
                x = float(v)
            except (TypeError, ValueError):
                raise EnsembleError(f"{path}: column {col!r} row {i + 1} holds {str(v)[:30]!r}, not a number; a "
                                    "regression target is a number in every row (a class name means task = "
                                    "\"classification\")") from None
            if not math.isfinite(x):
                raise EnsembleError(f"{path}: column {col!r} row {i + 1} is {v!r}; targets must be finite numbers: "
                                    "fill or drop that row")
            out[i, j] = x
    return out


def label_matrix(split) -> np.ndarray:
    """The split's labels as (n, T) text cells (one column: (n, 1))."""
    labels = np.asarray(split.labels, dtype=object)
    return labels[:, None] if labels.ndim == 1 else labels
