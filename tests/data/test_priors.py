"""Target class priors: "uniform", shares by name or in order, a mapping, or a labelled file."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ensemble.core.errors import EnsembleError, cli_messages
from ensemble.data.priors import class_prior, prior_from_project

LABELS = ["neg", "neu", "pos"]


def test_every_spelling_of_a_prior(tmp_path):
    np.testing.assert_allclose(class_prior("uniform", LABELS), [1 / 3] * 3)
    np.testing.assert_allclose(class_prior("pos=2,neg=1,neu=1", LABELS), [0.25, 0.25, 0.5])
    np.testing.assert_allclose(class_prior({"neg": 1, "neu": 3, "pos": 4}, LABELS), [0.125, 0.375, 0.5])
    np.testing.assert_allclose(class_prior([2, 2, 4], LABELS), [0.25, 0.25, 0.5])
    path = tmp_path / "train.csv"
    pd.DataFrame({"id": range(8), "text": ["t"] * 8, "label": ["neg"] * 2 + ["neu"] * 2 + ["pos"] * 4}).to_csv(path)
    np.testing.assert_allclose(class_prior(path, LABELS), [0.25, 0.25, 0.5])


@pytest.mark.parametrize("spec, message", [
    ("spam=1", r"^prior: class 'spam' is not one of the models' classes"),
    ({"neg": 1, "pos": 1}, r"no share for class 'neu'"),
    ([1, 1], r"got 2 shares for 3 classes"),
    ([1, 0, 1], r"every share must be a positive number"),
    ("missing.csv", r"prior missing.csv: no such file"),
])
def test_bad_priors_name_the_keyword(spec, message):
    with pytest.raises(EnsembleError, match=message):
        class_prior(spec, LABELS)


def test_the_cli_is_told_its_flag_and_a_project_its_relative_path(tmp_path):
    with cli_messages(), pytest.raises(EnsembleError, match=r"^--prior: class 'spam'"):
        class_prior("spam=1", LABELS)
    assert prior_from_project("uniform", tmp_path) == "uniform"
    assert prior_from_project("data/train.csv", tmp_path) == tmp_path / "data/train.csv"
