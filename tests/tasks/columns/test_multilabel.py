"""The multi-label task: sigmoids (never a softmax across labels), labels from 0/1 columns or
joined in one column, thresholds, and the submission's formats."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ensemble.core.errors import EnsembleError
from ensemble.data.splits import load_split
from ensemble.tasks.columns.multilabel import MULTI_LABEL, check_thresholds, combine_probabilities, multilabel_submission


def test_the_rules_read_each_label_through_its_own_sigmoid():
    from scipy.special import expit

    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(40, 3)), rng.normal(size=(40, 3))
    np.testing.assert_allclose(combine_probabilities([a, b], [0.3, 0.7]), 0.3 * expit(a) + 0.7 * expit(b))
    np.testing.assert_allclose(combine_probabilities([a, b], [0.3, 0.7], "logit"), expit(0.3 * a + 0.7 * b))
    p = combine_probabilities([a, b])
    assert not np.allclose(p.sum(axis=1), 1)  # labels are not exclusive: no softmax
    np.testing.assert_allclose(MULTI_LABEL.fold_mean([a, b]), np.log(p / (1 - p)), atol=1e-9)


def test_labels_in_columns_or_joined(tmp_path):
    pd.DataFrame({"id": ["a", "b"], "text": ["x", "y"], "g": ["1", "0"], "h": ["1", "0"],
                  "joined": ["h, g", ""]}).to_csv(tmp_path / "v.csv", index=False)
    cols = load_split(tmp_path / "v.csv", label=["g", "h"])
    np.testing.assert_array_equal(MULTI_LABEL.targets(cols, ("h", "g"), "m"), [[1, 1], [0, 0]])
    joined = load_split(tmp_path / "v.csv", label="joined", label_sep=",")
    np.testing.assert_array_equal(MULTI_LABEL.targets(joined, ("g", "h"), "m"), [[1, 1], [0, 0]])
    with pytest.raises(EnsembleError, match="row 1 names label 'h', not a label of m"):
        MULTI_LABEL.targets(joined, ("g", "k"), "m")


@pytest.mark.parametrize("value, expected", [("global", "global"), ("per_label", "per_label"), ("0.4", 0.4),
                                             (0.25, 0.25)])
def test_thresholds(value, expected):
    assert check_thresholds(value) == expected


@pytest.mark.parametrize("value", ["0", "1", "1.5", "-0.1", "nan", "high"])
def test_thresholds_outside_the_open_interval_are_refused(value):
    with pytest.raises(EnsembleError, match="threshold must be"):
        check_thresholds(value)


def test_the_submission_formats(tmp_path):
    proba = np.array([[0.9, 0.2], [0.1, 0.6]])
    frame = multilabel_submission(["a", "b"], proba, ("g", "h"), threshold=0.5)
    assert frame[["g", "h"]].to_numpy().tolist() == [[1, 0], [0, 1]]
    assert multilabel_submission(["a", "b"], proba, ("g", "h"), proba_columns=True)["h"].tolist() == [0.2, 0.6]
    pd.DataFrame({"id": ["b", "a"], "labels": ["", ""]}).to_csv(tmp_path / "sample.csv", index=False)
    joined = multilabel_submission(["a", "b"], proba, ("g", "h"), threshold=[0.95, 0.5],
                                   sample_submission=tmp_path / "sample.csv", label_sep="|")
    assert joined["labels"].tolist() == ["h", ""]  # per-label thresholds: g needs 0.95 now
