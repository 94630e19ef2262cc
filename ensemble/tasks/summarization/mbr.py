"""Minimum-Bayes-risk selection over the candidates of several generation members (issue 36).

Generations cannot be averaged like probabilities. MBR picks, for each row, the candidate that
agrees most with the others. Every member's candidates go into one pool, each weighted by its
member's weight shared among that member's candidates
(:func:`~ensemble.tasks.summarization.estimate.candidates_of` pools them and computes each row's
:func:`utility_matrix` once). A candidate's expected utility is the weighted mean of its utility
against every candidate in the pool, itself included (standard MBR, the pool being the
distribution); the candidate with the highest expected utility is submitted. The utility is ROUGE
by default (the competition's R1 + R2 + RL F1 on morphemes, :mod:`.rouge`), and any function of
two texts can be plugged in. It costs O(candidates^2) utilities per row, each text's n-grams
counted once.

How well MBR does is a figure to estimate on labelled rows, never the candidates' agreement with
each other: that agreement is what MBR maximises.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

__all__ = ["member_mass", "expected_utility", "mbr_choice", "rouge_utility", "utility_matrix"]


def member_mass(member_of: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """One row's candidate weights (summing to 1) from the member of each candidate and the
    members' ``weights``: a member's weight shared equally among its candidates on the row."""
    member_of = np.asarray(member_of, dtype=np.int64)
    w = np.asarray(weights, dtype=np.float64)
    mass = w[member_of] / np.bincount(member_of, minlength=len(w))[member_of]
    return mass / mass.sum()


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


def rouge_utility(rouge=None, types: Sequence[str] | None = None) -> Callable[[str, str], float]:
    """The F1 of ``types`` summed (default ROUGE-1 + ROUGE-2 + ROUGE-L: the competition's formula
    for one reference) of a candidate against another, over ``rouge``'s tokens (default:
    morphemes), its counts reused."""
    from ensemble.tasks.summarization.rouge import COMPETITION_TYPES, Rouge

    types = tuple(types or COMPETITION_TYPES)
    rouge = rouge or Rouge("morphemes", types)

    def utility(candidate: str, reference: str) -> float:
        scores = rouge.pair(candidate, reference)
        return float(sum(scores[t][2] for t in types))

    utility.symmetric = True  # F1 of n-grams and of the LCS: the same either way round
    return utility


def utility_matrix(texts: Sequence[str], utility: Callable[[str, str], float]) -> np.ndarray:
    """(n, n) ``utility(texts[a], texts[b])`` for one row's pooled candidates, the diagonal (a
    candidate against itself) included: each pair once when the utility says it is symmetric
    (``utility.symmetric = True``), else both ways."""
    symmetric = bool(getattr(utility, "symmetric", False))
    n = len(texts)
    u = np.zeros((n, n))
    for a in range(n):
        u[a, a] = utility(texts[a], texts[a])
        for b in range(a + 1, n):
            u[a, b] = utility(texts[a], texts[b])
            u[b, a] = u[a, b] if symmetric else utility(texts[b], texts[a])
    return u
