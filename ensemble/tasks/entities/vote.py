"""The entities ensemble as a notebook calls it: members' cached per-character (or per-word) tag
probabilities averaged with weights, spans decoded per row; a rule's weights (and O thresholds)
fitted on labelled rows; every rule estimated over rows against the best single member.

The task's vote and report hooks (the CLI's ``ensemble vote`` and ``report``) are not bound yet.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ensemble.core.errors import EnsembleError
from ensemble.tasks.entities.combination import align_units, decode_rows, mean_units
from ensemble.tasks.entities.estimate import EntityEstimate, estimate_methods
from ensemble.tasks.entities.fitting import METHODS, Fit, LabelledUnits, fit_rule
from ensemble.tasks.entities.spans import Span, beta_of
from ensemble.tasks.entities.submission import unit_probabilities

__all__ = ["entity_spans", "entity_probabilities", "fit_entities", "estimate_entities"]


def _texts(texts: Sequence, n: int, offsets: np.ndarray) -> list:
    texts = list(texts)
    if len(texts) != n:
        raise EnsembleError(f"got {len(texts)} texts for {n} rows of outputs")
    lengths = np.diff(offsets)
    bad = [i for i, t in enumerate(texts) if len(t) != lengths[i]]
    if bad:
        unit = "characters" if isinstance(texts[bad[0]], str) else "words"
        raise EnsembleError(f"row {bad[0]}: its text has {len(texts[bad[0]])} {unit}, the outputs {lengths[bad[0]]}: "
                            "the texts are not the ones the members ran over")
    return texts


def _unpacked(al, weights, thresholds):
    """Weights and thresholds, read from a :class:`Fit` of the same members when one is given."""
    if not isinstance(weights, Fit):
        return weights, thresholds
    if weights.members and tuple(weights.members) != al.members:
        raise EnsembleError(f"the fit is of members {', '.join(weights.members)}, the outputs are of "
                            f"{', '.join(al.members)}; give the outputs of the members it was fitted on, in its order")
    if thresholds is not None:
        raise EnsembleError("thresholds are given twice: by the fit and by thresholds=; give one")
    return weights.weights, weights.thresholds


def entity_spans(outputs: Sequence, texts: Sequence[str] | None = None, weights=None, thresholds=None
                 ) -> list[list[Span]]:
    """Each row's entity spans from the members' weighted mean.

    Parameters
    ----------
    outputs : sequence of Ragged
        Each member's per-character tag probabilities over one split (the token forward's output,
        :func:`~ensemble.workflows.predict.predict_forward` with ``"tokens"``).
    texts : sequence of str, or of lists of words, optional
        The split's texts (or, for members run with ``words=``, its lists of words) in the first
        member's row order: spans are trimmed of whitespace (characters, or words that are
        whitespace) at their edges, and each row's length is checked against its outputs.
    weights : sequence of float or Fit, optional
        One per member, equal by default; or a :class:`~ensemble.tasks.entities.fitting.Fit`
        (:func:`fit_entities`), whose weights and O thresholds are used.
    thresholds : float or dict, optional
        The O threshold of every type or of some (``{type: number}``); see
        :func:`~ensemble.tasks.entities.projection.o_thresholds`.

    Returns
    -------
    list of list of (start, end, type)
        End exclusive, per row in the first member's row order.
    """
    al = align_units(outputs)
    weights, thresholds = _unpacked(al, weights, thresholds)
    if texts is not None:
        texts = _texts(texts, len(al.ids), al.offsets)
    return decode_rows(mean_units(al.values, weights), al.offsets, al.tags, texts, thresholds)


def entity_probabilities(outputs: Sequence, weights=None):
    """The members' weighted mean per unit (character or word) as a long table, a row per
    (id, position) and a column per tag (NaN where no member covers the unit): what ``--proba``
    writes beside the submission (:func:`~ensemble.tasks.entities.submission.write_unit_probabilities`).
    ``weights`` as :func:`entity_spans` takes them (a fit's thresholds change no probability)."""
    al = align_units(outputs)
    weights, _ = _unpacked(al, weights, None)
    return unit_probabilities(al.ids, mean_units(al.values, weights), al.offsets, al.tags)


def _labelled(outputs, texts, gold, metric) -> LabelledUnits:
    al = align_units(outputs)
    return LabelledUnits(al, _texts(texts, len(al.ids), al.offsets), gold, beta_of(metric))


def fit_entities(outputs: Sequence, texts: Sequence, gold: Sequence[Sequence[Span]], method: str = "f1", *,
                 thresholds: bool = False, metric: str = "f1") -> Fit:
    """``method`` (:data:`~ensemble.tasks.entities.fitting.METHODS`) fitted on labelled rows (the
    members' outputs, the texts, or lists of words, and their gold spans): the members' weights
    and, with ``thresholds``, each type's O threshold, by entity F-beta (``metric``: ``"f1"``,
    or ``"f5"`` as PII Data Detection scores; :func:`~ensemble.tasks.entities.spans.beta_of`).
    Pass the result to :func:`entity_spans` with the test rows' outputs."""
    return fit_rule(_labelled(outputs, texts, gold, metric), method, thresholds=thresholds)


def estimate_entities(outputs: Sequence, texts: Sequence, gold: Sequence[Sequence[Span]], *,
                      methods: Sequence[str] = METHODS, thresholds: bool = False, folds: int = 5, metric: str = "f1",
                      n_resamples: int = 2000, seed: int = 0, confidence: float = 0.95) -> dict[str, EntityEstimate]:
    """Every rule's entity F-beta (``metric``, as :func:`fit_entities` reads it) estimated over
    the labelled rows, cross-validated (:func:`~ensemble.tasks.entities.estimate.estimate_methods`),
    with its gain over the best single member chosen out of fold."""
    return estimate_methods(_labelled(outputs, texts, gold, metric), methods, thresholds=thresholds, folds=folds,
                            n_resamples=n_resamples, seed=seed, confidence=confidence)
