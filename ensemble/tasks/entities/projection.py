"""What the task adds to the inference layer's projection of token probabilities onto characters
(:func:`~ensemble.inference.forwards.project_onto_characters`, each character the mean of the
tokens covering it over every window, NaN where no token does, then
:func:`~ensemble.inference.forwards.continue_inside_tokens`, no ``B-`` on a token's later
characters), or onto pre-split words (:func:`~ensemble.inference.forwards.project_onto_words`,
each word its first sub-token's probabilities or the mean): per-type thresholds on ``O``, and
spans decoded from the per-unit probabilities, an entity running across uncovered units
(spaces) only where it goes on after them.
"""

from __future__ import annotations

import numbers
from typing import Sequence

import numpy as np

from ensemble.core.errors import EnsembleError
from ensemble.tasks.entities.spans import Span, spans_from_tags, trim_spans

__all__ = ["o_thresholds", "decode"]


def o_thresholds(tags: Sequence[str], thresholds) -> np.ndarray | None:
    """Per tag column, the probability of ``O`` under which a unit takes that tag (PII-style
    recall: an entity tag wins while ``O`` is below its type's threshold, even when ``O`` is the
    most probable tag). ``thresholds``: None (plain argmax), one number for every type, or
    ``{type: number}`` (a type left out is decoded by plain argmax). Numbers in (0, 1]; 1 lets
    a type's tag win wherever ``O`` is not certain. Returns (K,) with NaN where no threshold is."""
    if thresholds is None:
        return None
    types = sorted({t[2:] for t in tags if t != "O"})
    given = thresholds if isinstance(thresholds, dict) else {k: thresholds for k in types}
    unknown = sorted(set(given) - set(types))
    if unknown:
        raise EnsembleError(f"threshold for type {unknown[0]!r}, which no tag has; the types are {', '.join(types)}")
    out = np.full(len(tags), np.nan)
    for j, t in enumerate(tags):
        if t != "O" and t[2:] in given:
            v = given[t[2:]]
            if isinstance(v, bool) or not isinstance(v, numbers.Real) or not 0 < float(v) <= 1:
                raise EnsembleError(f"the O threshold of type {t[2:]} must be a number in (0, 1]; got {v!r}")
            out[j] = float(v)
    return out


def decode(probs: np.ndarray, tags: Sequence[str], text: str | None = None, thresholds=None) -> list[Span]:
    """Spans from per-unit tag probabilities (n x K; NaN rows for units no token covered): the
    most probable tag of each covered unit, an uncovered unit inside an entity where the units on
    both sides continue it (``I-`` of that type after it), else outside; with ``text``, whitespace
    trimmed from the spans' edges. ``thresholds`` (per tag column, :func:`o_thresholds`): a unit
    whose most probable tag other than ``O`` has a threshold takes it when ``O``'s probability is
    below that threshold, and its most probable tag otherwise (a threshold only ever adds
    entities: one under 0.5 never drops a tag that beats ``O``)."""
    probs = np.asarray(probs, dtype=np.float64)
    covered = ~np.isnan(probs).any(axis=1)
    clean = np.nan_to_num(probs)
    best = clean.argmax(axis=1)
    if thresholds is not None and "O" in tags:
        o = list(tags).index("O")
        others = clean.copy()
        others[:, o] = -np.inf
        entity = others.argmax(axis=1)
        limit = np.asarray(thresholds, dtype=np.float64)[entity]
        ruled = ~np.isnan(limit)
        best = np.where(ruled & (clean[:, o] < np.where(ruled, limit, 0)), entity, best)
    best = np.where(covered, best, -1)
    unit_tags = [tags[j] if j >= 0 else None for j in best]
    after, nxt = [None] * len(unit_tags), None  # the tag of the next covered unit, from the right
    for i in range(len(unit_tags) - 1, -1, -1):
        after[i] = nxt
        nxt = unit_tags[i] if unit_tags[i] is not None else nxt
    filled, kind = [], None  # the type of the entity open before the gap
    for i, t in enumerate(unit_tags):
        if t is not None:
            filled.append(t)
            kind = t[2:] if t != "O" else None
            continue
        filled.append(f"I-{kind}" if kind is not None and after[i] == f"I-{kind}" else "O")
    spans = spans_from_tags(filled)
    return trim_spans(spans, text) if text is not None else spans
