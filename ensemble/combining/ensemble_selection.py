"""Ensemble selection (Caruana et al., 2004), one routine for every task: members added with
replacement, each step the one that lowers the mixture's loss most; the weights are the counts at
the best step.

A task states its loss as a :class:`SelectionProblem`: how a mixture of members is held (a running
sum of each member's part, or the counts themselves), its loss, and the loss with each member
added once more, all at once where the task can. Classification holds each member's probability
of the true class (log loss of the linear pool); the column tasks hold a running sum of outputs or
probabilities, or the counts for a rule that is not a weighted mean.
"""

from __future__ import annotations

from typing import Protocol, Sequence

import numpy as np

__all__ = ["SelectionProblem", "ensemble_selection"]


class SelectionProblem(Protocol):
    """What :func:`ensemble_selection` asks of a task's loss. ``state`` is whatever holds a
    mixture (a running sum, counts); ``count`` is the number of members in it, repeats included."""

    members: int

    def single_losses(self) -> np.ndarray:
        """Each member's own loss, shape (M,)."""

    def start(self, members: Sequence[int]):
        """The state of the mixture of ``members``, one each."""

    def loss(self, state, count: int) -> float:
        """The loss of the mixture ``state`` of ``count`` members."""

    def with_each(self, state, count: int) -> np.ndarray:
        """The loss of ``state`` with each member added once more, shape (M,)."""

    def add(self, state, member: int):
        """``state`` with ``member`` added once more."""


def ensemble_selection(problem: SelectionProblem, *, iterations: int = 50, init: int | None = None,
                       return_trace: bool = False):
    """Caruana's ensemble selection with replacement and sorted initialisation.

    The members sorted by their own loss; the best N join first, N being the size whose uniform
    mixture scores best (``init`` fixes N). Then each of ``iterations`` steps adds (with
    replacement) the member that lowers the mixture's loss most, ties to the lower index. The
    weights are the counts at the best step, not the last.

    Parameters
    ----------
    problem : SelectionProblem
        The task's loss over mixtures of its ``members`` (M) members.
    iterations : int, default 50
    init : int, optional
        The size of the sorted initialisation (default: the best).
    return_trace : bool, default False

    Returns
    -------
    ndarray of shape (M,)
        The weights (counts over their sum); with ``return_trace`` also the list of (member
        added, loss) steps, the initialisation's losses None but its last.
    """
    M = problem.members
    order = np.argsort(problem.single_losses(), kind="stable")
    if init is None:
        init_losses = [problem.loss(problem.start(order[:k]), k) for k in range(1, M + 1)]
        init = int(np.argmin(init_losses)) + 1
    counts = np.zeros(M)
    counts[order[:init]] = 1
    state = problem.start(order[:init])
    trace = [(int(i), None) for i in order[:init]]
    best_loss, best_counts = problem.loss(state, init), counts.copy()
    trace[-1] = (trace[-1][0], best_loss)
    total = init
    for _ in range(iterations):
        cand = problem.with_each(state, total)
        i = int(np.argmin(cand))
        counts[i] += 1
        state = problem.add(state, i)
        total += 1
        trace.append((i, float(cand[i])))
        if cand[i] < best_loss:
            best_loss, best_counts = float(cand[i]), counts.copy()
    w = best_counts / best_counts.sum()
    return (w, trace) if return_trace else w
