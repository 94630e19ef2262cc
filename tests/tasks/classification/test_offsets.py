"""Class-prior adjustments: the "prior" offsets are log(target / source), exactly Bayes' rule."""

from __future__ import annotations

import numpy as np
import pytest

from ensemble.tasks.classification.offsets import Adjustment, check_adjust, empirical_prior, fit_adjustment
from ensemble.core.errors import EnsembleError


def test_prior_adjustment_is_bayes_rule():
    rng = np.random.default_rng(0)
    proba = rng.dirichlet(np.ones(3), size=60)
    y = rng.integers(0, 3, 60)
    target = np.array([0.6, 0.3, 0.1])
    adj = fit_adjustment(proba, y, "prior", target=target, labels=("a", "b", "c"))
    source = empirical_prior(y, 3)
    expected = proba * (target / source)
    expected /= expected.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(adj.apply(proba), expected, atol=1e-12)
    back = Adjustment.from_dict(adj.to_dict())
    np.testing.assert_allclose(back.apply(proba), adj.apply(proba))


def test_checks_read_the_options_table():
    check_adjust("auto", auto=True)
    with pytest.raises(EnsembleError, match=r"adjust must be one of none, prior, fit; got 'auto'"):
        check_adjust("auto")
    with pytest.raises(EnsembleError, match=r"adjust_metric must be one of accuracy, macro_f1; got 'f1'"):
        check_adjust("fit", metric="f1")
