"""Entity spans and the tags that say them, and how entities are scored.

A span is ``(start, end, type)`` over the characters (or words) of one text, ``end`` exclusive.
Tags are BIO (IOB2): ``B-TYPE`` begins an entity, ``I-TYPE`` continues one, ``O`` is outside.
BIOES (``S-`` single, ``E-`` end) and BILOU (``U-``, ``L-``) are read and normalised to BIO.
Decoding follows the rules ``seqeval`` applies by default: an ``I-`` after ``O`` or after
another type begins an entity, and two entities of one type stay apart where a ``B-`` says so.

Scores: entity-level precision, recall and F-beta over exact (start, end, type) matches, micro
over all types and per type (equal to ``seqeval``'s default mode on the same tags; KLUE's
official entity figure is the macro over types in seqeval's strict mode, where an ``I-`` after
``O`` is no entity), and KLUE's character-level macro F1.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ensemble.core.errors import EnsembleError

__all__ = ["Span", "normalise_tags", "entity_types", "spans_from_tags", "tags_from_spans", "trim_spans", "beta_of",
           "entity_scores", "char_macro_f1", "f_beta", "row_counts", "micro_f"]

Span = tuple  # (start, end, type): end exclusive

_TO_BIO = {"B": "B", "I": "I", "S": "B", "E": "I", "U": "B", "L": "I"}


def normalise_tags(tags: Sequence[str], *, where: str = "tags") -> list[str]:
    """BIO tags from BIO, IOB2, BIOES or BILOU ones (``S-``/``U-`` -> ``B-``, ``E-``/``L-`` ->
    ``I-``); anything else is a one-line error naming ``where`` and the tag."""
    out = []
    for t in tags:
        t = str(t)
        if t == "O":
            out.append(t)
            continue
        prefix, dash, kind = t.partition("-")
        if not dash or not kind or prefix not in _TO_BIO:
            raise EnsembleError(f"{where}: tag {t!r} is not in a known scheme (O, B-/I- as BIO, or BIOES "
                                "S-/E-, or BILOU U-/L-); rename the tags to BIO")
        out.append(f"{_TO_BIO[prefix]}-{kind}")
    return out


def entity_types(tags: Sequence[str]) -> list[str]:
    """The entity types named by BIO (or BIOES) tags, sorted."""
    return sorted({t.partition("-")[2] for t in normalise_tags(tags)} - {""})


def spans_from_tags(tags: Sequence[str]) -> list[Span]:
    """The entities that BIO tags (one per character or word) say, in order."""
    spans, start, kind = [], None, None
    for i, t in enumerate(list(tags) + ["O"]):
        prefix, _, this = t.partition("-")
        continues = prefix == "I" and kind == this and start is not None
        if start is not None and not continues:
            spans.append((start, i, kind))
            start, kind = None, None
        if prefix in ("B", "I") and start is None:
            start, kind = i, this
    return spans


def tags_from_spans(spans: Sequence[Span], n: int, *, where: str = "spans") -> list[str]:
    """BIO tags over ``n`` units for ``spans``; spans out of range or overlapping are a one-line
    error naming ``where``."""
    tags = ["O"] * n
    for start, end, kind in sorted(spans):
        if not (0 <= start < end <= n):
            raise EnsembleError(f"{where}: span [{start}, {end}, {kind!r}] is outside the text (length {n}); spans are "
                                "[start, end) with 0 <= start < end <= length")
        if any(t != "O" for t in tags[start:end]):
            raise EnsembleError(f"{where}: span [{start}, {end}, {kind!r}] overlaps another; entities must not overlap")
        tags[start:end] = [f"B-{kind}"] + [f"I-{kind}"] * (end - start - 1)
    return tags


def trim_spans(spans: Sequence[Span], text: str) -> list[Span]:
    """Spans with the whitespace at their edges cut off (a span of whitespace alone dropped)."""
    out = []
    for start, end, kind in spans:
        while start < end and text[start].isspace():
            start += 1
        while end > start and text[end - 1].isspace():
            end -= 1
        if start < end:
            out.append((start, end, kind))
    return out


def f_beta(precision: float, recall: float, beta: float = 1.0) -> float:
    """(1 + beta^2) P R / (beta^2 P + R); 0 when both are 0."""
    b2 = beta * beta
    denom = b2 * precision + recall
    return 0.0 if denom == 0 else (1 + b2) * precision * recall / denom


def beta_of(metric: str) -> float:
    """The beta of an entity F-beta metric named ``f<beta>``: ``"f1"`` (entity F1, KLUE-NER's
    first metric), ``"f5"`` (PII Data Detection's micro F5, recall 25 times as important),
    ``"f0.5"``. Anything else is a one-line error."""
    import re

    m = re.fullmatch(r"f(\d+(?:\.\d+)?)", str(metric).strip().lower())
    if m is None or float(m.group(1)) <= 0:
        raise EnsembleError(f"metric must be f<beta>, entity-level micro F-beta: f1 (entity F1), f5 (PII Data "
                            f"Detection's F5), f0.5; got {metric!r}")
    return float(m.group(1))


def entity_scores(true: Sequence[Sequence[Span]], pred: Sequence[Sequence[Span]], *, beta: float = 1.0) -> dict:
    """Entity-level scores over rows of spans: exact (start, end, type) matches.

    Returns
    -------
    dict
        ``precision``, ``recall``, ``f`` (F-beta; F1 by default), micro over every entity, and
        ``per_type``: {type: {precision, recall, f, support}}.
    """
    if len(true) != len(pred):
        raise EnsembleError(f"got {len(pred)} rows of predicted spans for {len(true)} rows of true ones")
    counts: dict[str, list[int]] = {}  # type -> [true positives, predicted, true]
    for t_row, p_row in zip(true, pred):
        t_set, p_set = set(map(tuple, t_row)), set(map(tuple, p_row))
        for s in t_set | p_set:
            c = counts.setdefault(s[2], [0, 0, 0])
            c[0] += s in t_set and s in p_set
            c[1] += s in p_set
            c[2] += s in t_set

    def scores(tp: int, predicted: int, actual: int) -> dict:
        p = tp / predicted if predicted else 0.0
        r = tp / actual if actual else 0.0
        return {"precision": p, "recall": r, "f": f_beta(p, r, beta), "support": actual}

    total = np.sum([c for c in counts.values()], axis=0) if counts else np.zeros(3, dtype=int)
    return {**scores(*map(int, total)), "per_type": {k: scores(*c) for k, c in sorted(counts.items())}}


def row_counts(true: Sequence[Sequence[Span]], pred: Sequence[Sequence[Span]]) -> np.ndarray:
    """Each row's (true positives, predicted, true) entity counts, exact span and type: (n, 3) int64."""
    if len(true) != len(pred):
        raise EnsembleError(f"got {len(pred)} rows of predicted spans for {len(true)} rows of true ones")
    out = np.zeros((len(true), 3), dtype=np.int64)
    for i, (t, p) in enumerate(zip(true, pred)):
        t_set, p_set = set(map(tuple, t)), set(map(tuple, p))
        out[i] = len(t_set & p_set), len(p_set), len(t_set)
    return out


def micro_f(counts: np.ndarray, beta: float = 1.0) -> np.ndarray:
    """Micro entity F-beta of summed counts (..., 3), as :func:`~ensemble.tasks.entities.spans.entity_scores`
    gives it: precision or recall 0 where nothing was predicted or nothing is true."""
    counts = np.asarray(counts, dtype=np.float64)
    tp, predicted, actual = counts[..., 0], counts[..., 1], counts[..., 2]
    with np.errstate(invalid="ignore", divide="ignore"):
        p = np.where(predicted > 0, tp / predicted, 0.0)
        r = np.where(actual > 0, tp / actual, 0.0)
        return np.where(p + r > 0, (1 + beta ** 2) * p * r / (beta ** 2 * p + r), 0.0)


def char_macro_f1(true_tags: Sequence[Sequence[str]], pred_tags: Sequence[Sequence[str]],
                  labels: Sequence[str]) -> float:
    """KLUE-NER's character-level macro F1, as its baseline computes it: per-unit tags pooled over
    the rows, the F1 of each tag in ``labels`` (every ``B-``/``I-`` tag of each type and ``O``),
    a tag neither true nor predicted anywhere counting 1, averaged (scikit-learn's
    ``f1_score(average="macro", labels=labels, zero_division=1)``)."""
    t = [x for row in true_tags for x in row]
    p = [x for row in pred_tags for x in row]
    if len(t) != len(p):
        raise EnsembleError(f"got {len(p)} predicted tags for {len(t)} true ones")
    t, p = np.asarray(t, dtype=object), np.asarray(p, dtype=object)
    out = []
    for label in labels:
        tp = float(np.sum((t == label) & (p == label)))
        denom = float(np.sum(t == label) + np.sum(p == label))
        out.append(2 * tp / denom if denom else 1.0)
    return float(np.mean(out)) if out else 0.0
