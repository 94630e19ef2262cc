"""The entities task (:data:`ENTITIES`): token-classification members, whose per-character tag
probabilities (the token forward's, cached as a ragged payload) are aligned by tag name and row
id, averaged on the characters, decoded into spans and scored by entity F-beta against the gold
spans of the data's label column (``[[start, end, "TYPE"], ...]`` per row).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Sequence

import numpy as np

from ensemble.core.errors import EnsembleError
from ensemble.tasks.base import Task
from ensemble.tasks.entities.combination import AlignedUnits, align_units, decode_rows, mean_units
from ensemble.tasks.entities.fitting import METHODS
from ensemble.tasks.entities.gold import read_gold
from ensemble.tasks.entities.spans import Span, beta_of, entity_scores, entity_types, normalise_tags

__all__ = ["EntityTruth", "Entities", "ENTITIES", "reorder_rows"]


@dataclass
class EntityTruth:
    """A labelled split's gold spans, with what decoding the outputs on its rows needs.

    Attributes
    ----------
    spans : list of list of (start, end, type)
        Per row, end exclusive.
    texts : list of str
        The rows' texts: spans are trimmed of whitespace at their edges.
    offsets : ndarray of int64, shape (n + 1,)
        Row i's characters are units ``offsets[i]:offsets[i + 1]`` of the outputs.
    tags : tuple of str
        The outputs' tags (``O``, then ``B-``/``I-`` of each type).
    """

    spans: list
    texts: list
    offsets: np.ndarray
    tags: tuple

    def __len__(self) -> int:
        return len(self.spans)


def reorder_rows(al: AlignedUnits, ids: Sequence[str]) -> AlignedUnits:
    """``al`` with its rows in the order of ``ids`` (the split's), each id once; an id the outputs
    lack, or one they have beyond ``ids``, is an error naming it."""
    ids = np.asarray([str(i) for i in ids])
    where = {str(i): r for r, i in enumerate(al.ids)}
    missing = [i for i in ids if i not in where]
    if missing or len(ids) != len(al.ids):
        known = set(ids)
        extra = next((str(i) for i in al.ids if str(i) not in known), None)
        raise EnsembleError(f"the members' outputs {'lack row ' + repr(missing[0]) if missing else 'have row ' + repr(extra)}"
                            " of the split: they were computed over another file; run ensemble predict on it")
    order = np.array([where[i] for i in ids], dtype=np.int64)
    lengths = np.diff(al.offsets)[order]
    offsets = np.zeros(len(order) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    units = (np.concatenate([np.arange(al.offsets[r], al.offsets[r + 1]) for r in order]) if len(order)
             else np.zeros(0, dtype=np.int64))
    return replace(al, ids=ids, offsets=offsets, values=[v[units] for v in al.values])


class Entities(Task):
    """Named entities: spans of typed text, from token classifiers averaged on characters."""

    name = "entities"
    heads = ("token classification",)
    output = "tag probabilities per character"
    forward = "tokens"
    payload = "ragged"
    combine_rules = ("mean",)
    methods = METHODS
    metrics = ("f1",)
    weights_formats = ("ensemble.entity-weights/1",)
    members_noun = "token classifiers"

    def greater_is_better(self, metric: str) -> bool:
        beta_of(metric)
        return True

    def metric_value(self, metric: str, proba: np.ndarray, y: EntityTruth) -> float:
        """Entity-level micro F-beta (``metric``: ``f1``, ``f5``...) of the spans decoded from the
        per-unit probabilities ``proba`` (N, K) on ``y``'s rows, exact span and type."""
        pred = decode_rows(np.asarray(proba, dtype=np.float64), y.offsets, y.tags, y.texts)
        return float(entity_scores(y.spans, pred, beta=beta_of(metric))["f"])

    def align(self, outputs: Sequence, ids: Sequence[str] | None = None, labels: Sequence[str] | None = None
              ) -> AlignedUnits:
        """The members' :class:`~ensemble.core.outputs.Ragged` outputs aligned
        (:func:`~ensemble.tasks.entities.combination.align_units`): tags by name, rows in the
        order of ``ids`` (default: the first member's)."""
        al = align_units(outputs)
        if labels is not None and tuple(labels) != tuple(al.tags):
            raise EnsembleError(f"the members tag {', '.join(al.tags)} on one split and {', '.join(labels)} on another; "
                                "give the same members for every split")
        return al if ids is None else reorder_rows(al, ids)

    def combine(self, arrays: Sequence[np.ndarray], weights: Sequence[float] | None = None, rule: str | None = None
                ) -> np.ndarray:
        """The weighted mean of the members' per-unit probabilities, over the members that cover
        each unit (:func:`~ensemble.tasks.entities.combination.mean_units`)."""
        if rule not in (None, "mean"):
            raise EnsembleError(f"combine must be mean for {self.name}; got {rule!r}")
        return mean_units(arrays, weights)

    def fold_mean(self, arrays: Sequence[np.ndarray]) -> np.ndarray:
        """A fold group's per-unit probabilities: the mean of its fold models' on each unit they
        cover (NaN where none does)."""
        return mean_units(arrays)

    def mean_space(self, outputs: np.ndarray) -> np.ndarray:
        """The cached outputs are probabilities already: averaged as they are."""
        return np.asarray(outputs, dtype=np.float64)

    def predict(self, proba: np.ndarray, labels: Sequence[str]) -> np.ndarray:
        """Each unit's most probable tag (spans come from :func:`decode_rows`, which knows the rows)."""
        return np.asarray(labels)[np.nan_to_num(np.asarray(proba), nan=-1.0).argmax(axis=1)]

    def submission(self, ids: Sequence[str], proba: np.ndarray, labels: Sequence[str], *, offsets=None, texts=None,
                   thresholds=None, sample_submission=None, id_column: str = "id", label_column: str = "entities",
                   **_):
        """Spans decoded per row from ``proba`` (the combined per-unit probabilities), written as
        the sample submission asks (:func:`~ensemble.tasks.entities.submission.entity_submission`)."""
        from ensemble.tasks.entities.submission import entity_submission

        if offsets is None or texts is None:
            raise EnsembleError("an entities submission needs the rows' offsets and texts to decode spans")
        spans = decode_rows(np.asarray(proba, dtype=np.float64), offsets, labels, texts, thresholds)
        return entity_submission(ids, spans, texts, sample_submission=sample_submission, id_column=id_column,
                                 label_column=label_column)

    def check_labels(self, split, names: Sequence[str], model: str) -> None:
        """The gold spans parse against their texts, and every gold type is one the member tags."""
        from ensemble.tasks.entities.alignment import align_tags

        align_tags({model: list(names)})  # tags in a known scheme, not transformers' LABEL_i defaults
        self._known_types(split, self._gold(split), names, model)

    @staticmethod
    def _known_types(split, gold, names: Sequence[str], model: str) -> None:
        """Every gold type is one the members tag (a one-line error naming the file and the type)."""
        kinds = set(entity_types(normalise_tags(list(names), where=f"{model}: id2label")))
        unknown = sorted({s[2] for row in gold for s in row} - kinds)
        if unknown:
            raise EnsembleError(f"{split.path}: column {split.label_column}: entity type {unknown[0]} is not one "
                                f"{model} tags ({', '.join(sorted(kinds))}); fix the gold spans or give members "
                                "trained on its types")

    def _gold(self, split) -> list[list[Span]]:
        return read_gold(split)[1]

    def truth(self, split, labels: Sequence[str], model: str, index_order) -> EntityTruth:
        """The gold spans of ``split`` (over characters, or over words for a split of pre-split
        words), with the rows' units (texts, or lists of words) and where each row's units start."""
        texts, gold = read_gold(split)
        offsets = np.zeros(len(texts) + 1, dtype=np.int64)
        np.cumsum([len(t) for t in texts], out=offsets[1:])
        self._known_types(split, gold, labels, model)
        return EntityTruth(gold, texts, offsets, tuple(labels))

    def check_texts(self, split) -> None:
        """An empty text (or an empty list of words) has no unit to tag: refused, naming the row."""
        units = split.word_lists() if getattr(split, "words", None) is not None else split.texts[0]
        empty = next((i for i, t in enumerate(units) if t is None or len(t) == 0), None)
        if empty is not None:
            raise EnsembleError(f"{split.path}: row {empty + 1} (id {split.ids[empty]}): an empty "
                                f"{'list of words' if getattr(split, 'words', None) else 'text'}, with nothing to "
                                "tag; give the row its text, or drop it")

    def read_as(self, ref) -> None:
        if ref.head.kind not in self.heads:
            raise EnsembleError(f"{ref.folder / 'config.json'}: {ref.head.describe()}; an entities member is a "
                                "*ForTokenClassification model (one tag per token)")


ENTITIES = Entities()
