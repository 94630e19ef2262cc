"""The task seam and its first task, single-label classification, against scikit-learn."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, f1_score, log_loss

from ensemble.core.combination import combine
from ensemble.core.errors import EnsembleError
from ensemble.io.modelfiles import head_of
from ensemble.tasks import TASKS, Task, task_for_head, task_named
from ensemble.tasks.classification.task import CLASSIFICATION, make_submission


def test_the_registry():
    assert TASKS["classification"] is CLASSIFICATION and isinstance(CLASSIFICATION, Task)
    assert set(TASKS) == {"classification", "regression", "multi_label", "entities", "summarization"}
    assert task_named("classification") is CLASSIFICATION
    assert task_named("multi-label") is TASKS["multi_label"]
    with pytest.raises(EnsembleError, match=r"task must be one of classification, regression, multi_label, entities, "
                                            r"summarization; got 'translation'"):
        task_named("translation")
    assert CLASSIFICATION.primary == "accuracy" and "<task classification" in repr(CLASSIFICATION)


@pytest.mark.parametrize("config, runs", [
    ({"architectures": ["BertForSequenceClassification"], "id2label": {"0": "a", "1": "b"}}, True),
    ({"architectures": ["BertForSequenceClassification"], "num_labels": 1}, False),  # regression
    ({"architectures": ["BertForSequenceClassification"], "problem_type": "multi_label_classification",
      "id2label": {"0": "a", "1": "b"}}, False),
    ({"architectures": ["BertForTokenClassification"], "id2label": {"0": "O", "1": "B-PER"}}, False),
    ({"architectures": ["BartForConditionalGeneration"]}, False),
    ({"architectures": ["MeanPool"], "auto_map": {"AutoModelForSequenceClassification": "m.MeanPool"}}, True),
    ({"architectures": ["MeanPool"]}, False),
])
def test_which_heads_the_task_runs(config, runs):
    assert (task_for_head(head_of(config)) is CLASSIFICATION) is runs


def test_metrics_predictions_and_combination_against_references():
    rng = np.random.default_rng(1)
    logits = [rng.normal(size=(50, 4)) for _ in range(3)]
    y = rng.integers(0, 4, 50)
    proba = CLASSIFICATION.combine(logits, [0.2, 0.3, 0.5])
    np.testing.assert_allclose(proba, combine(logits, [0.2, 0.3, 0.5], "prob"))
    pred = proba.argmax(axis=1)
    assert CLASSIFICATION.metric_value("accuracy", proba, y) == pytest.approx(accuracy_score(y, pred))
    assert CLASSIFICATION.metric_value("macro_f1", proba, y) == pytest.approx(f1_score(y, pred, average="macro"))
    assert CLASSIFICATION.metric_value("log_loss", proba, y) == pytest.approx(log_loss(y, proba, labels=range(4)))
    assert CLASSIFICATION.greater_is_better("accuracy") and not CLASSIFICATION.greater_is_better("log_loss")
    labels = ["a", "b", "c", "d"]
    assert list(CLASSIFICATION.predict(proba, labels)) == [labels[i] for i in pred]
    frame = CLASSIFICATION.submission([f"t{i}" for i in range(50)], proba, labels)
    assert frame.equals(make_submission([f"t{i}" for i in range(50)], proba, labels))
    assert list(frame["label"]) == [labels[i] for i in pred]


def test_members_of_different_tasks_are_an_error_naming_two():
    from ensemble.tasks import shared_task

    other = SimpleNamespace(name="regression")
    refs = [SimpleNamespace(name="bert", task=CLASSIFICATION), SimpleNamespace(name="sts", task=other)]
    with pytest.raises(EnsembleError, match=r"members of different tasks: bert is classification, sts is regression"):
        shared_task((r.name, r.task) for r in refs)
    assert shared_task((r.name, r.task) for r in refs[:1]) is CLASSIFICATION
