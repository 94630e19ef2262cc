"""The one ensemble selection: against a plain greedy loop that recomputes every mixture from its
counts, for classification's pool of true-class probabilities and the column tasks' running
sums alike."""

from __future__ import annotations

import numpy as np

from ensemble.combining.ensemble_selection import ensemble_selection
from ensemble.tasks.classification.weighting import TrueClassPool


def _plain(loss_of_counts, M: int, iterations: int) -> np.ndarray:
    """Caruana with sorted initialisation, every loss recomputed from the counts."""
    single = [loss_of_counts(np.eye(M)[m]) for m in range(M)]
    order = np.argsort(single, kind="stable")
    init_losses = []
    for k in range(1, M + 1):
        c = np.zeros(M)
        c[order[:k]] = 1
        init_losses.append(loss_of_counts(c))
    k = int(np.argmin(init_losses)) + 1
    counts = np.zeros(M)
    counts[order[:k]] = 1
    best, best_counts = loss_of_counts(counts), counts.copy()
    for _ in range(iterations):
        trials = [loss_of_counts(counts + np.eye(M)[m]) for m in range(M)]
        i = int(np.argmin(trials))
        counts[i] += 1
        if trials[i] < best:
            best, best_counts = trials[i], counts.copy()
    return best_counts / best_counts.sum()


def test_classification_pool_equals_a_plain_loop():
    rng = np.random.default_rng(0)
    true_proba = rng.uniform(0.05, 0.95, size=(300, 5))
    true_proba[:, 2] = np.clip(true_proba[:, 0] + rng.normal(scale=0.05, size=300), 0.01, 0.99)

    def loss(c):
        return float(-np.mean(np.log(true_proba @ c / c.sum())))

    w = ensemble_selection(TrueClassPool(true_proba), iterations=25)
    np.testing.assert_allclose(w, _plain(loss, 5, 25))
    assert w.sum() == 1 and (w >= 0).all()


class _Sums:
    """A running sum of (n, T) outputs, scored by mean squared error: the column tasks' shape."""

    def __init__(self, parts, y):
        self.parts, self.y, self.members = parts, y, len(parts)

    def single_losses(self):
        return np.array([self.loss(p, 1) for p in self.parts])

    def start(self, members):
        return sum(self.parts[m] for m in members)

    def loss(self, state, count):
        return float(np.mean((state / count - self.y) ** 2))

    def with_each(self, state, count):
        return np.array([self.loss(state + p, count + 1) for p in self.parts])

    def add(self, state, member):
        return state + self.parts[member]


def test_running_sums_equal_a_plain_loop_and_the_trace_says_each_step():
    rng = np.random.default_rng(1)
    y = rng.normal(size=(200, 2))
    parts = [y + rng.normal(scale=s, size=y.shape) for s in (0.5, 0.8, 1.2, 0.6)]

    def loss(c):
        return float(np.mean((sum(ci * p for ci, p in zip(c, parts)) / c.sum() - y) ** 2))

    w, trace = ensemble_selection(_Sums(parts, y), iterations=20, return_trace=True)
    np.testing.assert_allclose(w, _plain(loss, 4, 20))
    added = [i for i, _ in trace]
    init = len(trace) - 20  # the sorted initialisation, then one entry per step
    assert [l is None for _, l in trace[:init]] == [True] * (init - 1) + [False]
    assert all(l is not None for _, l in trace[init:])
    # the best step's counts, not the last one's
    final = np.bincount(added, minlength=4) / len(added)
    assert loss(w * 100) <= loss(final * 100) + 1e-12
