"""What the entities report shows beside its estimates: each type's precision, recall and F1, the
types most often confused (a predicted span over a gold one of another type), and the rows where
the members disagree most, each text marked with every member's spans.
"""

from __future__ import annotations

from collections import Counter
from itertools import combinations
from typing import Mapping, Sequence

import numpy as np

from ensemble.core.errors import EnsembleError
from ensemble.tasks.entities.spans import Span, entity_scores

__all__ = ["type_table", "confused_types", "mark_spans", "disagreements"]


def type_table(gold: Sequence[Sequence[Span]], pred: Sequence[Sequence[Span]], *, beta: float = 1.0):
    """A row per entity type (and ``all``, micro): precision, recall, F-beta and support, exact
    span and type (:func:`~ensemble.tasks.entities.spans.entity_scores`); a DataFrame."""
    import pandas as pd

    scores = entity_scores(gold, pred, beta=beta)
    rows = [{"type": k, **v} for k, v in scores["per_type"].items()]
    rows.append({"type": "all", "precision": scores["precision"], "recall": scores["recall"], "f": scores["f"],
                 "support": sum(v["support"] for v in scores["per_type"].values())})
    return pd.DataFrame(rows, columns=["type", "precision", "recall", "f", "support"])


def _overlap(a: Span, b: Span) -> int:
    return max(0, min(a[1], b[1]) - max(a[0], b[0]))


def confused_types(gold: Sequence[Sequence[Span]], pred: Sequence[Sequence[Span]], top: int = 5) -> list[tuple]:
    """The most frequent ``(gold type, predicted type, count)``: a predicted span of another type
    overlapping a gold span by at least one character, counted once per such pair; most
    frequent first (ties by the types' names)."""
    if len(gold) != len(pred):
        raise EnsembleError(f"got {len(pred)} rows of predicted spans for {len(gold)} rows of gold ones")
    pairs: Counter = Counter()
    for g_row, p_row in zip(gold, pred):
        for g in g_row:
            for p in p_row:
                if g[2] != p[2] and _overlap(g, p) > 0:
                    pairs[(g[2], p[2])] += 1
    return [(g, p, n) for (g, p), n in sorted(pairs.items(), key=lambda kv: (-kv[1], kv[0]))[:top]]


def mark_spans(text: str, spans: Sequence[Span]) -> str:
    """``text`` with each span written ``[its text]TYPE``: what a reader scans to see where
    members differ."""
    out, at = [], 0
    for a, b, kind in sorted(spans):
        if a < at or b > len(text) or a >= b:
            raise EnsembleError(f"span {(a, b, kind)!r} overlaps another or lies outside the text of {len(text)} characters")
        out += [text[at:a], "[", text[a:b], "]", kind]
        at = b
    return "".join(out + [text[at:]])


def _disagreement(rows: Sequence[set]) -> float:
    """1 - the mean Jaccard similarity of the members' span sets over member pairs (two empty
    sets agree)."""
    sims = [len(a & b) / len(a | b) if a | b else 1.0 for a, b in combinations(rows, 2)]
    return 1.0 - float(np.mean(sims)) if sims else 0.0


def disagreements(member_spans: Mapping[str, Sequence[Sequence[Span]]], texts: Sequence[str],
                  ids: Sequence[str] | None = None, top: int = 5) -> list[dict]:
    """The ``top`` rows where the members' spans differ most (1 - mean pairwise Jaccard of their
    span sets; rows where all agree left out), each with every member's marked text.

    Returns
    -------
    list of dict
        ``{"row", "id", "disagreement", "marked": {member: text}}``, most disagreement first.
    """
    names = list(member_spans)
    n = len(texts)
    for name in names:
        if len(member_spans[name]) != n:
            raise EnsembleError(f"{name}: {len(member_spans[name])} rows of spans for {n} texts")
    ids = [str(i) for i in (ids if ids is not None else range(n))]
    if len(ids) != n:
        raise EnsembleError(f"{len(ids)} ids for {n} texts; give one id per text")
    scores = np.array([_disagreement([set(map(tuple, member_spans[m][r])) for m in names]) for r in range(n)])
    order = [int(r) for r in np.argsort(-scores, kind="stable") if scores[r] > 0][:top]
    return [{"row": r, "id": ids[r], "disagreement": float(scores[r]),
             "marked": {m: mark_spans(texts[r], member_spans[m][r]) for m in names}} for r in order]
