"""Minimum-Bayes-risk selection over the candidates of several generation members (issue 36).

Generations cannot be averaged like probabilities. MBR picks, for each row, the candidate that
agrees most with the others. Every member's candidates go into one pool, each weighted by its
member's weight shared among that member's candidates. A candidate's expected utility is the
weighted mean of its utility against every candidate in the pool, itself included (standard MBR,
the pool being the distribution); the candidate with the highest expected utility is submitted. The utility is ROUGE by default (the competition's
R1 + R2 + RL F1 on morphemes, :mod:`.rouge`), and any function of two texts can be plugged in.
It costs O(candidates^2) utilities per row, each text's n-grams counted once.

How well MBR does is a figure to estimate on labelled rows, never the candidates' agreement with
each other: that agreement is what MBR maximises.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from ensemble.core.errors import EnsembleError

__all__ = ["Pool", "pool_candidates", "expected_utility", "mbr_choice", "rouge_utility", "mbr_select"]


@dataclass(frozen=True)
class Pool:
    """One row's pooled candidates: their texts, weights (summing to 1) and members."""

    texts: tuple
    weights: np.ndarray
    members: tuple


def pool_candidates(outputs: Sequence, weights: Sequence[float] | None = None) -> list[Pool]:
    """Each row's pool from the members' :class:`~ensemble.core.outputs.Texts` over one split,
    in the same row order (their ids must agree). A member's weight (equal by default) is shared
    equally among its candidates on a row; rows where no candidate has weight are an error."""
    if not outputs:
        raise EnsembleError("no members' generations to pool; give at least one")
    w = np.ones(len(outputs)) if weights is None else np.asarray(weights, dtype=np.float64)
    if w.shape != (len(outputs),) or not np.isfinite(w).all() or (w < 0).any() or w.sum() <= 0:
        raise EnsembleError(f"weights must be {len(outputs)} finite numbers >= 0, not all zero; got {list(np.ravel(w))}")
    ids = [str(i) for i in outputs[0].ids]
    for out in outputs[1:]:
        if [str(i) for i in out.ids] != ids:
            raise EnsembleError(f"{out.model or 'a member'}: its generations are of other rows (or in another order) "
                                f"than {outputs[0].model or 'the first member'}'s; generate every member over the same split")
    pools = []
    for r in range(len(ids)):
        texts, mass, members = [], [], []
        for m, out in enumerate(outputs):
            row = list(out.texts[r])
            texts += row
            mass += [w[m] / len(row)] * len(row) if row else []
            members += [out.model or f"member {m}"] * len(row)
        total = float(np.sum(mass))
        if total <= 0:
            raise EnsembleError(f"row {ids[r]!r}: no candidate with weight; give a member with candidates a weight")
        pools.append(Pool(tuple(texts), np.asarray(mass) / total, tuple(members)))
    return pools


def expected_utility(utility: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Each candidate's expected utility under the pool's distribution: its weighted mean utility
    against every candidate, itself included (``utility[i, j]``: candidate i judged with j as the
    reference; the diagonal, a candidate against itself, is the most it can get), ``weights`` (n,)
    summing to 1. So a member's weight makes its candidates likelier, as it should: one member
    weighted alone submits its own MBR choice, never another member's."""
    u = np.asarray(utility, dtype=np.float64)
    w = np.asarray(weights, dtype=np.float64)
    return u @ (w / w.sum())


def mbr_choice(utility: np.ndarray, weights: np.ndarray) -> int:
    """The index of the candidate with the highest expected utility; of candidates tied (within
    float noise, 1e-9), the one with the most weight, then the first."""
    eu = expected_utility(utility, weights)
    tied = np.flatnonzero(eu >= eu.max() - 1e-9)
    return int(tied[np.argmax(np.asarray(weights, dtype=np.float64)[tied])])


def rouge_utility(rouge=None) -> Callable[[str, str], float]:
    """ROUGE-1 + ROUGE-2 + ROUGE-L F1 of a candidate against another (the competition's formula
    for one reference), over ``rouge``'s tokens (default: morphemes), its counts reused."""
    from ensemble.tasks.summarization.rouge import COMPETITION_TYPES, Rouge

    rouge = rouge or Rouge("morphemes", COMPETITION_TYPES)

    def utility(candidate: str, reference: str) -> float:
        scores = rouge.pair(candidate, reference)
        return float(sum(scores[t][2] for t in COMPETITION_TYPES))

    utility.symmetric = True  # F1 of n-grams and of the LCS: the same either way round
    return utility


def mbr_select(pools: Sequence[Pool], utility: Callable[[str, str], float] | None = None) -> list[str]:
    """Each row's MBR choice (its text) from its pool (:func:`pool_candidates`), by ``utility``
    (default :func:`rouge_utility`): ``utility(candidate, reference)``, computed once per pair
    when it says it is symmetric (``utility.symmetric = True``), else both ways."""
    utility = utility or rouge_utility()
    symmetric = bool(getattr(utility, "symmetric", False))
    out = []
    for pool in pools:
        n = len(pool.texts)
        u = np.zeros((n, n))
        for i in range(n):
            u[i, i] = utility(pool.texts[i], pool.texts[i])
            for j in range(i + 1, n):
                u[i, j] = utility(pool.texts[i], pool.texts[j])
                u[j, i] = u[i, j] if symmetric else utility(pool.texts[j], pool.texts[i])
        out.append(pool.texts[mbr_choice(u, pool.weights)])
    return out
