"""The entities ensemble as a notebook calls it: members' cached per-character (or per-word) tag
probabilities averaged with weights, spans decoded per row; the weights fitted on labelled rows;
every weight rule estimated over rows against the best single member.

The task's vote and report hooks (the CLI's ``ensemble vote`` and ``report``) are not bound yet.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ensemble.core.errors import EnsembleError
from ensemble.tasks.entities.combination import align_units, decode_rows, mean_units
from ensemble.tasks.entities.estimate import METHODS, EntityEstimate, estimate_methods, method_weights, micro_f, \
    row_counts
from ensemble.tasks.entities.spans import Span

__all__ = ["entity_spans", "fit_entity_weights", "estimate_entities"]


def _texts(texts: Sequence[str], n: int, offsets: np.ndarray) -> list[str]:
    texts = list(texts)
    if len(texts) != n:
        raise EnsembleError(f"got {len(texts)} texts for {n} rows of outputs")
    lengths = np.diff(offsets)
    bad = [i for i, t in enumerate(texts) if len(t) != lengths[i]]
    if bad:
        raise EnsembleError(f"row {bad[0]}: its text has {len(texts[bad[0]])} characters, the outputs {lengths[bad[0]]}: "
                            "the texts are not the ones the members ran over")
    return texts


def entity_spans(outputs: Sequence, texts: Sequence[str] | None = None, weights=None) -> list[list[Span]]:
    """Each row's entity spans from the members' weighted mean.

    Parameters
    ----------
    outputs : sequence of Ragged
        Each member's per-character tag probabilities over one split (the token forward's output,
        :func:`~ensemble.workflows.predict.predict_forward` with ``"tokens"``).
    texts : sequence of str, optional
        The split's texts in the first member's row order: spans are trimmed of whitespace at their
        edges, and each text's length is checked against its outputs.
    weights : sequence of float, optional
        One per member (:func:`fit_entity_weights`); equal by default.

    Returns
    -------
    list of list of (start, end, type)
        End exclusive, per row in the first member's row order.
    """
    al = align_units(outputs)
    if texts is not None:
        texts = _texts(texts, len(al.ids), al.offsets)
    return decode_rows(mean_units(al.values, weights), al.offsets, al.tags, texts)


def _member_spans(al, texts) -> list[list[list[Span]]]:
    return [decode_rows(v, al.offsets, al.tags, texts) for v in al.values]


def fit_entity_weights(outputs: Sequence, texts: Sequence[str], gold: Sequence[Sequence[Span]], method: str = "f1", *,
                       beta: float = 1.0) -> np.ndarray:
    """The members' weights under ``method`` (:data:`~ensemble.tasks.entities.estimate.METHODS`),
    fitted on labelled rows: their outputs, texts and gold spans."""
    if method not in METHODS:
        raise EnsembleError(f"method must be one of {', '.join(METHODS)}; got {method!r}")
    al = align_units(outputs)
    texts = _texts(texts, len(al.ids), al.offsets)
    member_f = [micro_f(row_counts(gold, s).sum(axis=0), beta) for s in _member_spans(al, texts)]
    return method_weights(method, np.array(member_f))


def estimate_entities(outputs: Sequence, texts: Sequence[str], gold: Sequence[Sequence[Span]], *,
                      methods: Sequence[str] = METHODS, folds: int = 5, beta: float = 1.0, n_resamples: int = 2000,
                      seed: int = 0, confidence: float = 0.95) -> dict[str, EntityEstimate]:
    """Every weight rule's entity F-beta estimated over the labelled rows, cross-validated
    (:func:`~ensemble.tasks.entities.estimate.estimate_methods`), with its gain over the best
    single member chosen out of fold."""
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise EnsembleError(f"method must be one of {', '.join(METHODS)}; got {unknown[0]!r}")
    al = align_units(outputs)
    texts = _texts(texts, len(al.ids), al.offsets)
    if len(gold) != len(al.ids):
        raise EnsembleError(f"got {len(gold)} rows of gold spans for {len(al.ids)} rows of outputs")

    def spans_with(weights, rows):
        chosen = [i for i, w in enumerate(weights) if w > 0]
        picked = np.concatenate([np.arange(al.offsets[r], al.offsets[r + 1]) for r in rows]) if len(rows) else []
        sub = [al.values[i][picked] for i in chosen]
        offsets = np.zeros(len(rows) + 1, dtype=np.int64)
        np.cumsum(np.diff(al.offsets)[rows], out=offsets[1:])
        return decode_rows(mean_units(sub, np.asarray(weights)[chosen]), offsets, al.tags, [texts[r] for r in rows])

    return estimate_methods(_member_spans(al, texts), gold, spans_with, methods=methods, folds=folds, beta=beta,
                            n_resamples=n_resamples, seed=seed, confidence=confidence)
