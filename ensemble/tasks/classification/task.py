"""Single-label classification, the first task: each model outputs class logits (n, C) with its
class names; members are aligned by class name and row id, combined by a weighted rule over
their probabilities, scored by accuracy (primary), macro-F1 and log loss, predicted by the
argmax, and submitted as one label column (names or indices) or one probability column per
class."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from ensemble.core.combination import COMBINE_RULES, align, combine
from ensemble.core.errors import EnsembleError
from ensemble.core.options import METHODS
from ensemble.core.scores import CLASS_METRICS, accuracy, log_loss, macro_f1, roc_auc, qwk
from ensemble.data.sample_submission import sample_order
from ensemble.io.modelfiles import SINGLE_LABEL
from ensemble.tasks.base import Task

log = logging.getLogger(__name__)

__all__ = ["Classification", "CLASSIFICATION", "make_submission", "metric_value", "ece", "DEFAULT_METRICS",
           "sample_order",
           "GREATER_IS_BETTER"]

DEFAULT_METRICS = ("accuracy", "macro_f1", "log_loss")
GREATER_IS_BETTER = {**CLASS_METRICS, "ece": False}
_EPS = 1e-15


def _is_int(value: str) -> bool:
    return value.lstrip("-").isdigit()


def make_submission(
    ids: Sequence[str],
    proba: np.ndarray,
    labels: Sequence[str],
    *,
    sample_submission: str | os.PathLike | None = None,
    proba_columns: bool = False,
    id_column: str = "id",
    label_column: str = "label",
    class_order: Sequence[str] | None = None,
    member_orders: Mapping[str, Sequence[str]] | None = None,
    text_columns: Sequence[str] = (),
    probabilities: bool = False,
):
    """The submission as a DataFrame, checked against the sample submission; nothing written.

    Parameters
    ----------
    ids : sequence of str, shape (n,)
        Test ids, in the order of ``proba``'s rows.
    proba : ndarray, shape (n, C)
        Ensemble probabilities; the prediction is the argmax.
    labels : sequence of str, length C
        Class names in column order.
    sample_submission : path-like, optional
        The competition's sample submission to follow.
    proba_columns : bool, default False
        Add a probability column per class (named by the class).
    id_column, label_column : str
        Column names when there is no sample.
    class_order : sequence of str, optional
        When the sample's label column holds integers: the class of each index. Default: the
        order every member's ``id2label`` agrees on (``member_orders``), never the order in which
        the members happen to be listed; members that disagree are an error asking for it.
    member_orders : mapping of member name to its class names in id2label order, optional
    text_columns : sequence of str
        The test data's text columns: a sample whose label column is one of them is the test file
        given by mistake (its texts would be replaced by classes), and is refused.
    probabilities : bool, default False
        The competition scores probabilities (log loss, ROC AUC), not labels: a sample's single
        column gets the probability of the positive class (the second class: ``class_order``'s,
        else the members') for two classes, and is refused for more (they need one column per
        class); without a sample, a probability column per class is added.
    """
    import pandas as pd

    ids = np.asarray(ids, dtype=object)
    labels = [str(c) for c in labels]
    pred = np.asarray(proba).argmax(axis=1)
    if sample_submission is None:
        frame = pd.DataFrame({id_column: ids, label_column: np.asarray(labels, dtype=object)[pred]})
        order = np.arange(len(ids))
    else:
        sample_path = Path(sample_submission)
        sample, order = sample_order(sample_path, ids)
        rest = list(sample.columns[1:])
        texts = [c for c in rest if c in set(text_columns)]
        if texts:
            raise EnsembleError(f"{sample_path}: its column {texts[0]!r} is a text column of the test data: this is the "
                                "test file, not a sample submission; pass the competition's sample submission (id and "
                                "label columns), or none")
        frame = sample.copy()
        if set(rest) == set(labels):  # one column per class: probabilities
            for c in rest:
                frame[c] = proba[order, labels.index(c)]
        elif len(rest) == 1 and probabilities:
            frame[rest[0]] = proba[order, labels.index(_positive(labels, class_order, sample_path, rest[0]))]
        elif len(rest) == 1:
            target = rest[0]
            as_index = all(_is_int(v) for v in sample[target]) and not all(_is_int(c) for c in labels)
            if as_index:
                index_of = _index_order(labels, class_order, member_orders, sample_path)
                log.info("%s: column %r holds integers; writing class indices (%s)", sample_path, target,
                         ", ".join(f"{i}={c}" for i, c in enumerate(index_of)))
                to_index = np.array([index_of.index(c) for c in labels])
                frame[target] = to_index[pred[order]]
            else:
                frame[target] = np.asarray(labels, dtype=object)[pred[order]]
        else:
            raise EnsembleError(f"{sample_path}: columns {', '.join(rest)} after the id are neither one label column "
                                f"nor one column per class ({', '.join(labels)}); pass a sample with id and label")
    if proba_columns or (probabilities and sample_submission is None):
        for j, c in enumerate(labels):
            if c not in frame.columns:
                frame[c] = np.asarray(proba)[order, j]
    frame.attrs["sample_submission"] = None if sample_submission is None else str(Path(sample_submission).resolve())
    return frame


def _positive(labels, class_order, sample_path, column: str) -> str:
    """The class whose probability a one-column submission scored on probabilities holds."""
    if len(labels) != 2:
        raise EnsembleError(f"{sample_path}: one column ({column!r}) for {len(labels)} classes, and the metric is "
                            "scored on probabilities: pass a sample with one column per class "
                            f"({', '.join(labels)}), or a metric scored on labels")
    positive = str(class_order[1]) if class_order is not None else labels[1]
    if positive not in labels:
        raise EnsembleError(f"class order {','.join(map(str, class_order))} must name each class of the models once "
                            f"({', '.join(labels)})")
    log.info("%s: column %r gets the probability of class %s (the metric scores probabilities; the second class in "
             "the %s order)", sample_path, column, positive, "given" if class_order is not None else "members'")
    return positive


def _index_order(labels, class_order, member_orders, sample_path) -> list[str]:
    """The class of each integer index in a submission: given, or agreed by every member."""
    from ensemble.core.errors import option

    if class_order is not None:
        order = [str(c) for c in class_order]
        if sorted(order) != sorted(labels):
            raise EnsembleError(f"class order {','.join(order)} must name each class of the models once "
                                f"({', '.join(labels)})")
        return order
    orders = {m: tuple(map(str, o)) for m, o in (member_orders or {}).items()}
    if len(set(orders.values())) > 1:
        shown = "; ".join(f"{m}: {','.join(o)}" for m, o in orders.items())
        raise EnsembleError(f"{sample_path}: holds class indices, but the members number their classes differently "
                            f"({shown}); {option('class_order', ','.join(next(iter(orders.values()))))} with the "
                            "order the competition uses")
    return list(next(iter(orders.values()))) if orders else list(labels)


def ece(proba: np.ndarray, y: np.ndarray, bins: int = 15) -> float:
    """Expected calibration error of the top-class probability, ``bins`` equal-width bins
    (Guo et al., 2017): the weighted mean gap between confidence and accuracy."""
    conf = proba.max(axis=1)
    correct = proba.argmax(axis=1) == y
    edges = np.linspace(0.0, 1.0, bins + 1)
    idx = np.clip(np.digitize(conf, edges[1:-1], right=True), 0, bins - 1)
    total = 0.0
    for b in range(bins):
        mask = idx == b
        if mask.any():
            total += mask.mean() * abs(conf[mask].mean() - correct[mask].mean())
    return float(total)


def _fixed(proba: np.ndarray):
    """A fitted-looking classifier that returns given predictions for row indices, so that any
    scikit-learn scorer (``get_scorer(name)(est, X, y)``) can score them."""
    from sklearn.base import BaseEstimator, ClassifierMixin

    class Fixed(ClassifierMixin, BaseEstimator):
        def __init__(self, proba=None):
            self.proba = proba

        def fit(self, X=None, y=None):
            self.classes_ = np.arange(self.proba.shape[1])
            return self

        def predict(self, X):
            return self.proba[np.asarray(X).ravel()].argmax(axis=1)

        def predict_proba(self, X):
            return self.proba[np.asarray(X).ravel()]

        def decision_function(self, X):
            return np.log(np.clip(self.predict_proba(X), _EPS, None))

    return Fixed(proba).fit()


def metric_value(name: str, proba: np.ndarray, y: np.ndarray) -> float:
    """``accuracy``, ``macro_f1``, ``log_loss``, ``roc_auc``, ``qwk`` (quadratic weighted kappa),
    ``ece``, or any scikit-learn scorer by name (greater is better for those, e.g.
    ``balanced_accuracy``, ``neg_log_loss``)."""
    own = {"accuracy": accuracy, "macro_f1": macro_f1, "log_loss": log_loss, "roc_auc": roc_auc, "qwk": qwk}
    if name in own:
        return own[name](proba, y)
    if name == "ece":
        return ece(proba, y)
    from sklearn.metrics import get_scorer

    try:
        scorer = get_scorer(name)
    except ValueError:
        raise EnsembleError(f"unknown metric {name!r}; use accuracy, macro_f1, log_loss, roc_auc, qwk, ece or a scikit-learn "
                            "scorer name such as balanced_accuracy") from None
    return float(scorer(_fixed(proba), np.arange(len(y))[:, None], y))


def greater(name: str) -> bool:
    """Whether a higher ``name`` is better (scikit-learn scorers: always)."""
    return GREATER_IS_BETTER.get(name, True)


class Classification(Task):
    """Single-label classification (``*ForSequenceClassification`` with two or more outputs)."""

    name = "classification"
    heads = (SINGLE_LABEL,)
    output = "logits"
    combine_rules = COMBINE_RULES
    methods = METHODS
    metrics = tuple(CLASS_METRICS)  # accuracy first: the default primary metric

    def runs(self, head) -> bool:
        # a model with its own code (auto_map) is run as the classifier its code defines
        return head.kind in self.heads or (head.kind == "custom" and head.custom_code)

    def greater_is_better(self, metric: str) -> bool:
        return greater(metric)

    def metric_value(self, metric: str, proba: np.ndarray, y: np.ndarray) -> float:
        return metric_value(metric, proba, y)

    def align(self, outputs, ids=None, labels=None):
        return align(outputs, ids=ids, labels=labels)

    def combine(self, arrays, weights=None, rule=None):
        return combine(arrays, weights, rule or self.combine_rules[0])

    def mean_space(self, outputs):
        from ensemble.core.combination import softmax

        return softmax(np.asarray(outputs, dtype=np.float64))

    def predict(self, proba, labels):
        return np.asarray([str(c) for c in labels], dtype=object)[np.asarray(proba).argmax(axis=1)]

    def submission(self, ids, proba, labels, **options):
        return make_submission(ids, proba, labels, **options)

    def fold_mean(self, arrays):
        """The log of the fold models' mean probability (log-sum-exp of their log-probabilities,
        minus log K)."""
        from scipy.special import logsumexp

        from ensemble.core.combination import log_softmax

        lp = np.stack([log_softmax(a) for a in arrays])  # float64
        return logsumexp(lp, axis=0) - np.log(len(arrays))

    def check_labels(self, split, names, model):
        split.label_indices(names, model=model)

    def truth(self, split, labels, model, index_order):
        return split.label_indices(labels, model=model, index_order=index_order())

    def accuracy_of(self, values, split, labels, model):
        return float((np.asarray(values).argmax(axis=1) == split.label_indices(labels, model=model)).mean())

    # what the vote workflow asks of a weights file (the hooks are bound in this package's __init__)

    members_noun = "classifiers"

    @property
    def weights_formats(self):
        from ensemble.io.weightsfile import WEIGHTS_SCHEMA

        return (WEIGHTS_SCHEMA,)

    def read_as(self, ref) -> None:
        super().read_as(ref)
        if len(ref.labels) < 2:
            raise EnsembleError(f"{ref.folder / 'config.json'}: one output cannot be read as a classifier; "
                                "task = \"regression\"")


CLASSIFICATION = Classification()
