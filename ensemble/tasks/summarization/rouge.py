"""ROUGE as summarization competitions score it, Korean included (issue 36).

``rouge-score`` keeps only ``[a-z0-9]`` (so Korean scores 0), and the ``rouge`` package of the
baselines splits on whitespace (so a particle glued to a noun makes another token). Here the tokens
come from ``tokenizer``:

``"morphemes"``
    Korean morphemes from ``kiwipiepy`` (no Java): ``경찰은`` is ``경찰`` + ``은``. AI Stages'
    dialogue summarization scores on morphemes.
``"whitespace"``
    The text split on whitespace (the ``rouge`` package's tokens).
``"characters"``
    Every character that is not whitespace.
``"rouge_score"``
    ``rouge-score``'s own: lower-cased, everything outside ``[a-z0-9]`` a separator (no stemming):
    the scores then equal ``rouge_scorer.RougeScorer``'s.

ROUGE-1, ROUGE-2, ROUGE-L (longest common subsequence) and ROUGE-Lsum (the union LCS over lines)
give precision, recall and F1 per (prediction, reference) pair; several references per row are
aggregated by ``mean`` (each figure averaged over the references, as AI Stages scores) or ``max``
(the reference with the best F1, as ``RougeScorer.score_multi``). A text's tokens and n-gram
counts are computed once per :class:`Rouge` and reused by every pair it is in (a bootstrap, MBR).
"""

from __future__ import annotations

import functools
import re
from collections import Counter
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

from ensemble.core.errors import EnsembleError
from ensemble.core.options import ALLOWED

__all__ = ["TOKENIZERS", "TYPES", "AGGREGATES", "Rouge", "TextCounts", "competition_score", "lcs_length"]

TOKENIZERS = ALLOWED["rouge_tokenizer"]  # morphemes, whitespace, characters, rouge_score
TYPES = ("rouge1", "rouge2", "rougeL", "rougeLsum")
AGGREGATES = ALLOWED["rouge_aggregate"]  # mean, max
# AI Stages' dialogue summarization: per row, ROUGE-1, -2 and -L F1 each averaged over the row's
# references, on morphemes, summed; the score is their mean over rows
COMPETITION_TYPES = ("rouge1", "rouge2", "rougeL")

_NON_ALNUM = re.compile(r"[^a-z0-9]+")


@functools.lru_cache(maxsize=1)
def _kiwi():
    """The one Kiwi analyser of the process (loading its model takes a second or two)."""
    try:
        from kiwipiepy import Kiwi
    except ImportError:  # pragma: no cover - a dependency of the package
        raise EnsembleError("rouge_tokenizer = morphemes needs kiwipiepy: pip install kiwipiepy") from None
    return Kiwi()


def make_tokenizer(name: str) -> Callable[[str], list[str]]:
    """The tokenizer called ``name`` (:data:`TOKENIZERS`): a function from a text to its tokens."""
    if name == "whitespace":
        return str.split
    if name == "characters":
        return lambda text: [c for c in text if not c.isspace()]
    if name == "rouge_score":
        return lambda text: _NON_ALNUM.sub(" ", text.lower()).split()
    if name == "morphemes":
        kiwi = _kiwi()
        return lambda text: [t.form for t in kiwi.tokenize(text)]
    raise EnsembleError(f"rouge_tokenizer must be one of {', '.join(TOKENIZERS)}; got {name!r}")


@dataclass(frozen=True)
class TextCounts:
    """One text's tokens, its unigram and bigram counts, and its lines' tokens (for ROUGE-Lsum)."""

    tokens: tuple
    unigrams: Counter
    bigrams: Counter
    lines: tuple


def lcs_length(a: Sequence, b: Sequence) -> int:
    """The length of the longest common subsequence of ``a`` and ``b`` (dynamic programming, one
    row at a time)."""
    if not a or not b:
        return 0
    prev = [0] * (len(b) + 1)
    for x in a:
        row = [0]
        for j, y in enumerate(b):
            row.append(prev[j] + 1 if x == y else max(prev[j + 1], row[j]))
        prev = row
    return prev[-1]


def _lcs_positions(a: Sequence, b: Sequence) -> set:
    """The positions in ``a`` of one longest common subsequence of ``a`` and ``b`` (the table's
    backtrack, stepping back in ``a`` on ties, as ``rouge-score`` does)."""
    n, m = len(a), len(b)
    table = [[0] * (m + 1) for _ in range(n + 1)]
    for i in range(n):
        for j in range(m):
            table[i + 1][j + 1] = table[i][j] + 1 if a[i] == b[j] else max(table[i][j + 1], table[i + 1][j])
    out, i, j = set(), n, m
    while i > 0 and j > 0:
        if a[i - 1] == b[j - 1]:
            out.add(i - 1)
            i, j = i - 1, j - 1
        elif table[i][j - 1] > table[i - 1][j]:
            j -= 1
        else:
            i -= 1
    return out


def _prf(hits: float, predicted: int, reference: int) -> tuple[float, float, float]:
    p = hits / predicted if predicted > 0 else 0.0
    r = hits / reference if reference > 0 else 0.0
    return p, r, (2 * p * r / (p + r) if p + r > 0 else 0.0)


def _lsum(pred: TextCounts, ref: TextCounts) -> tuple[float, float, float]:
    """ROUGE-Lsum: for each reference line, the union of its tokens on an LCS with any
    prediction line; a token counted at most as often as it occurs on each side."""
    left_pred = Counter(t for line in pred.lines for t in line)  # the lines' tokens, as each line is tokenized
    left_ref = Counter(t for line in ref.lines for t in line)
    n_pred, n_ref = sum(left_pred.values()), sum(left_ref.values())
    hits = 0
    for line in ref.lines:
        union = set()
        for p_line in pred.lines:
            union |= _lcs_positions(line, p_line)
        for i in sorted(union):
            t = line[i]
            if left_pred[t] > 0 and left_ref[t] > 0:
                hits += 1
                left_pred[t] -= 1
                left_ref[t] -= 1
    return _prf(hits, n_pred, n_ref)


class Rouge:
    """ROUGE over tokens of ``tokenizer``, each text tokenized and counted once.

    Parameters
    ----------
    tokenizer : {"morphemes", "whitespace", "characters", "rouge_score"}, default "morphemes"
    types : sequence of {"rouge1", "rouge2", "rougeL", "rougeLsum"}
    aggregate : {"mean", "max"}, default "mean"
        Several references of a row: each figure averaged over them, or the reference with the
        best F1 taken (per type).
    """

    def __init__(self, tokenizer: str = "morphemes", types: Sequence[str] = COMPETITION_TYPES,
                 aggregate: str = "mean"):
        unknown = [t for t in types if t not in TYPES]
        if unknown or not types:
            raise EnsembleError(f"ROUGE types must be some of {', '.join(TYPES)}; got {list(types)!r}")
        if aggregate not in AGGREGATES:
            raise EnsembleError(f"aggregate must be one of {', '.join(AGGREGATES)}; got {aggregate!r}")
        self.tokenizer, self.types, self.aggregate = tokenizer, tuple(types), aggregate
        self._tokenize = make_tokenizer(tokenizer)
        self._counts: dict[str, TextCounts] = {}

    def counts(self, text: str) -> TextCounts:
        """``text``'s tokens and n-gram counts, computed on its first use."""
        found = self._counts.get(text)
        if found is None:
            if not isinstance(text, str):
                raise EnsembleError(f"ROUGE reads texts; got {type(text).__name__} {text!r}"[:120])
            tokens = tuple(self._tokenize(text))
            lines = (tuple(tuple(self._tokenize(s)) for s in text.split("\n") if s) if "rougeLsum" in self.types
                     else ())
            found = TextCounts(tokens, Counter(tokens), Counter(zip(tokens, tokens[1:])), lines)
            self._counts[text] = found
        return found

    def pair(self, prediction: str, reference: str) -> dict[str, tuple[float, float, float]]:
        """``{type: (precision, recall, F1)}`` of one prediction against one reference."""
        p, r = self.counts(prediction), self.counts(reference)
        out = {}
        for t in self.types:
            if t in ("rouge1", "rouge2"):
                a, b = (p.unigrams, r.unigrams) if t == "rouge1" else (p.bigrams, r.bigrams)
                out[t] = _prf(sum((a & b).values()), sum(a.values()), sum(b.values()))
            elif t == "rougeL":
                out[t] = _prf(lcs_length(p.tokens, r.tokens), len(p.tokens), len(r.tokens))
            else:
                out[t] = _lsum(p, r)
        return out

    def row(self, prediction: str, references: Sequence[str]) -> dict[str, tuple[float, float, float]]:
        """``{type: (precision, recall, F1)}`` against a row's references, aggregated."""
        if isinstance(references, str):
            references = [references]
        if not references:
            raise EnsembleError("a row has no reference summary; give each row at least one")
        pairs = [self.pair(prediction, ref) for ref in references]
        if self.aggregate == "max":
            return {t: max((s[t] for s in pairs), key=lambda prf: prf[2]) for t in self.types}
        return {t: tuple(sum(s[t][k] for s in pairs) / len(pairs) for k in range(3)) for t in self.types}

    def score(self, predictions: Sequence[str], references: Sequence[Sequence[str]]) -> dict[str, float]:
        """Each type's F1 averaged over rows (``references``: one reference, or a list, per row)."""
        if len(predictions) != len(references):
            raise EnsembleError(f"got {len(predictions)} predictions for {len(references)} rows of references")
        rows = [self.row(p, refs) for p, refs in zip(predictions, references)]
        n = max(len(rows), 1)
        return {t: sum(r[t][2] for r in rows) / n for t in self.types}


def competition_score(predictions: Sequence[str], references: Sequence[Sequence[str]], *,
                      tokenizer: str = "morphemes", rouge: Rouge | None = None) -> float:
    """AI Stages' dialogue-summarization score: per row, ROUGE-1, ROUGE-2 and ROUGE-L F1, each
    averaged over the row's references, on ``tokenizer``'s tokens (morphemes), summed; averaged
    over rows. ``rouge``: a :class:`Rouge` of those types whose counts are reused."""
    rouge = rouge or Rouge(tokenizer, COMPETITION_TYPES, "mean")
    if rouge.aggregate != "mean" or not set(COMPETITION_TYPES) <= set(rouge.types):
        raise EnsembleError("the competition's score averages ROUGE-1, -2 and -L over each row's references: give a "
                            "Rouge of those types with aggregate mean")
    scores: Mapping[str, float] = rouge.score(predictions, references)
    return float(sum(scores[t] for t in COMPETITION_TYPES))
