"""The regression task: its heads, combination rules, targets read from the label columns, and
its submission."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ensemble.core.errors import EnsembleError
from ensemble.data.splits import load_split
from ensemble.io.modelfiles import head_of
from ensemble.tasks import TASKS, task_for_head
from ensemble.tasks.columns.regression import REGRESSION, combine_outputs, value_submission


@pytest.mark.parametrize("config, task", [
    ({"architectures": ["BertForSequenceClassification"], "num_labels": 1}, "regression"),  # as transformers reads it
    ({"architectures": ["BertForSequenceClassification"], "problem_type": "regression",
      "id2label": {"0": "a", "1": "b"}}, "regression"),
    ({"architectures": ["BertForSequenceClassification"], "problem_type": "multi_label_classification",
      "id2label": {"0": "a", "1": "b"}}, "multi_label"),
    ({"architectures": ["BertForSequenceClassification"], "id2label": {"0": "a", "1": "b"}}, "classification"),
])
def test_each_head_finds_its_task(config, task):
    assert task_for_head(head_of(config)) is TASKS[task]


def test_the_rules_combine_column_by_column():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(50, 2)), 10 + 3 * rng.normal(size=(50, 2))
    np.testing.assert_allclose(combine_outputs([a, b], [0.25, 0.75]), 0.25 * a + 0.75 * b)
    w = np.array([[1.0, 0.0], [0.0, 1.0]])  # a weight vector per target
    np.testing.assert_allclose(combine_outputs([a, b], w), np.stack([a[:, 0], b[:, 1]], axis=1))
    # rank: the order of the mean rank, the values of the mean
    from scipy.stats import rankdata

    r = combine_outputs([a, b], None, "rank")
    mean = (a + b) / 2
    for j in range(2):
        order = np.argsort((rankdata(a[:, j]) + rankdata(b[:, j])) / 2, kind="stable")
        np.testing.assert_allclose(r[order, j], np.sort(mean[:, j]))
    # standardized: members on other scales count alike; the result on their mean scale
    z = combine_outputs([a, b], None, "standardized")
    za, zb = (a - a.mean(0)) / a.std(0), (b - b.mean(0)) / b.std(0)
    np.testing.assert_allclose(z, (za + zb) / 2 * (a.std(0) + b.std(0)) / 2 + (a.mean(0) + b.mean(0)) / 2)
    with pytest.raises(EnsembleError, match="combine rule must be one of mean, rank, standardized"):
        combine_outputs([a, b], None, "geometric")


def test_targets_are_read_by_name_and_refused_when_they_are_not_numbers(tmp_path):
    pd.DataFrame({"id": ["a", "b"], "text": ["x", "y"], "s": ["1.5", "2"], "t": ["0", "-1e3"]}).to_csv(
        tmp_path / "v.csv", index=False)
    split = load_split(tmp_path / "v.csv", label=["s", "t"])
    np.testing.assert_array_equal(REGRESSION.targets(split, ("t", "s"), "m"), [[0, 1.5], [-1e3, 2]])
    with pytest.raises(EnsembleError, match=r"m's target 'u' \(id2label\) is not a label column"):
        REGRESSION.targets(split, ("t", "u"), "m")
    pd.DataFrame({"id": ["a"], "text": ["x"], "s": ["NA"]}).to_csv(tmp_path / "w.csv", index=False)
    with pytest.raises(EnsembleError, match=r"column 's' row 1 holds 'NA', not a number"):
        REGRESSION.targets(load_split(tmp_path / "w.csv", label="s"), ("LABEL_0",), "m")


def test_the_submission_follows_the_sample(tmp_path):
    values = np.array([[1.0, 2.0], [3.0, 4.0]])
    frame = value_submission(["a", "b"], values, ("s", "t"))
    assert list(frame.columns) == ["id", "s", "t"] and frame["t"].tolist() == [2.0, 4.0]
    pd.DataFrame({"id": ["b", "a"], "t": [0, 0], "s": [0, 0]}).to_csv(tmp_path / "sample.csv", index=False)
    frame = value_submission(["a", "b"], values, ("s", "t"), sample_submission=tmp_path / "sample.csv")
    assert list(frame.columns) == ["id", "t", "s"] and frame["s"].tolist() == [3.0, 1.0]
