"""What the task adds to the inference layer's projection of token probabilities onto characters
(:func:`~ensemble.inference.forwards.project_onto_characters`: each character the mean of the
tokens covering it over every window, NaN where no token does): inside a token no character
begins an entity, so on every character of a token but its first each ``B-`` share is moved to
its ``I-`` tag, member by member, before members with other tokenizers are averaged; words take
their first sub-token's probabilities (or the mean) through ``word_ids``; spans are decoded from
the per-unit probabilities, an entity running across uncovered characters (spaces) only where it
goes on after them.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ensemble.core.errors import EnsembleError
from ensemble.tasks.entities.spans import Span, spans_from_tags, trim_spans

__all__ = ["inside_columns", "begin_at_token_starts", "project_words", "decode"]


def inside_columns(tags: Sequence[str]) -> np.ndarray:
    """For each tag column, the column its share moves to inside a token: ``B-X`` -> ``I-X``, every
    other tag to itself. A ``B-X`` without its ``I-X`` is an error naming the tag."""
    index = {t: j for j, t in enumerate(tags)}
    out = np.arange(len(tags))
    for j, t in enumerate(tags):
        if t.startswith("B-"):
            inside = "I-" + t[2:]
            if inside not in index:
                raise EnsembleError(f"tag {t!r} has no {inside!r} among the tags ({', '.join(tags)}): a token's later "
                                    "characters could not continue its entity; give the member both")
            out[j] = index[inside]
    return out


def begin_at_token_starts(values: np.ndarray, spans: np.ndarray, tags: Sequence[str]) -> np.ndarray:
    """One member's per-character tag probabilities of one text (n x K, as the token forward
    caches them) with each ``B-`` share moved to its ``I-`` tag on every character of a token
    (``spans``: the text's token spans, (start, end) characters) but its first."""
    out = np.array(values, dtype=np.float64)
    spans = np.asarray(spans, dtype=np.int64).reshape(-1, 2)
    later = np.zeros(len(out), dtype=bool)
    for start, end in spans:
        later[start + 1:end] = True
    if later.any():
        moved = np.zeros((int(later.sum()), out.shape[1]))
        np.add.at(moved.T, inside_columns(tags), out[later].T)
        out[later] = moved
    return out


def project_words(probs: np.ndarray, word_ids: Sequence[int | None], n_words: int, tags: Sequence[str],
                  how: str = "first") -> np.ndarray:
    """One text's token probabilities onto its ``n_words`` words (``is_split_into_words``), through
    the tokenizer's ``word_ids`` (None for special tokens): each word takes its first sub-token's
    probabilities (``how="first"``, what Trainer runs label) or their mean (``"mean"``). Returns
    (n_words x K), NaN rows for words no token covers (cut off by truncation)."""
    if how not in ("first", "mean"):
        raise EnsembleError(f"how must be first or mean; got {how!r}")
    probs = np.asarray(probs, dtype=np.float64)
    out = np.zeros((n_words, len(tags)))
    counts = np.zeros(n_words)
    seen = set()
    for t, w in enumerate(word_ids):
        if w is None or (how == "first" and w in seen):
            continue
        seen.add(w)
        out[w] += probs[t]
        counts[w] += 1
    with np.errstate(invalid="ignore", divide="ignore"):
        return out / counts[:, None]


def decode(probs: np.ndarray, tags: Sequence[str], text: str | None = None) -> list[Span]:
    """Spans from per-unit tag probabilities (n x K; NaN rows for units no token covered): the
    most probable tag of each covered unit, an uncovered unit inside an entity where the units on
    both sides continue it (``I-`` of that type after it), else outside; with ``text``, whitespace
    trimmed from the spans' edges."""
    probs = np.asarray(probs, dtype=np.float64)
    covered = ~np.isnan(probs).any(axis=1)
    best = np.where(covered, np.nan_to_num(probs).argmax(axis=1), -1)
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
