"""Token probabilities projected onto the units of the text: its characters, through the fast
tokenizer's offsets, or its words, through ``word_ids``; and spans decoded from them.

Members with different tokenizers split "경찰은" into different pieces, so their outputs cannot be
averaged position by position. Projected onto characters (or words) they can: a token's tag
probabilities cover its characters, the first taking them as they are and the others with each
``B-`` share moved to its ``I-`` tag (inside a token no character begins an entity). Characters
no token covers (spaces) are marked so, and decoding lets an entity run across them only where
it goes on after. Overlapping windows of a long text add their projections; the mean is taken
over the windows that cover each character.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ensemble.core.errors import EnsembleError
from ensemble.tasks.entities.spans import Span, spans_from_tags, trim_spans

__all__ = ["inside_columns", "Projection", "project_chars", "project_words", "decode"]


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


class Projection:
    """Tag probabilities summed over the units of one text (n units x K tags), with how many
    tokens (of every window) covered each unit: :meth:`add` a window at a time, :meth:`mean` at the
    end (NaN rows where no token covered the unit)."""

    def __init__(self, n: int, tags: Sequence[str]):
        self.tags = tuple(tags)
        self.sums = np.zeros((n, len(self.tags)))
        self.counts = np.zeros(n)
        self._inside = inside_columns(self.tags)

    def add(self, probs: np.ndarray, spans: Sequence[tuple[int, int]]) -> Projection:
        """One window's token probabilities (T x K) and each token's ``(start, end)`` units (end
        exclusive; ``start == end`` for special and padding tokens, which cover nothing)."""
        probs = np.asarray(probs, dtype=np.float64)
        inside = np.zeros_like(probs)
        np.add.at(inside.T, self._inside, probs.T)  # each B- share moved to its I- column
        for t, (start, end) in enumerate(spans):
            if end <= start:
                continue
            self.sums[start] += probs[t]
            self.sums[start + 1:end] += inside[t]
            self.counts[start:end] += 1
        return self

    def mean(self) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return self.sums / self.counts[:, None]


def project_chars(probs: np.ndarray, offsets: np.ndarray, n_chars: int, tags: Sequence[str]) -> Projection:
    """One window's token probabilities onto the ``n_chars`` characters of its text, through the
    fast tokenizer's ``offset_mapping`` (T x 2; ``(0, 0)`` for special tokens)."""
    offsets = np.asarray(offsets, dtype=np.int64).reshape(-1, 2)
    if len(offsets) != len(probs):
        raise EnsembleError(f"got {len(probs)} tokens' probabilities and {len(offsets)} offsets")
    if len(offsets) and offsets.max() > n_chars:
        raise EnsembleError(f"an offset ({int(offsets.max())}) runs past the text's {n_chars} characters: the offsets "
                            "are of another text")
    return Projection(n_chars, tags).add(probs, offsets)


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
