"""Multi-label classification: each model outputs one logit per label (n, L), read through a
sigmoid each (never a softmax across labels); members are aligned by label name and row id,
combined by the weighted mean of their probabilities (also the sigmoid of the logit mean, and a
rank mean), decided by a threshold (one, or one per label) and scored by micro-F1 (primary),
macro-F1 and samples-F1; submitted as one 0/1 column per label, one column of joined labels, or
probabilities."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from ensemble.core.errors import EnsembleError, flag, option
from ensemble.core.options import check_thresholds
from ensemble.tasks.columns.base import Metric, ValueTask, label_matrix, match_names

__all__ = ["MultiLabel", "MULTI_LABEL", "METRICS", "sigmoid", "logit", "decide", "check_thresholds", "average_precision"]


_EPS = 1e-7


def sigmoid(z: np.ndarray) -> np.ndarray:
    from scipy.special import expit

    return expit(np.asarray(z, dtype=np.float64))


def logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=np.float64), _EPS, 1 - _EPS)
    return np.log(p) - np.log1p(-p)


def _counts(pred, y):
    return np.concatenate([pred * y, pred * (1 - y), (1 - pred) * y], axis=1)  # tp, fp, fn per label


def _f1(tp, fp, fn):
    d = 2 * tp + fp + fn
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(d > 0, 2 * tp / np.where(d > 0, d, 1), 0.0)  # zero_division=0, as scikit-learn


def _split3(S):
    L = S.shape[-1] // 3
    return S[..., :L], S[..., L:2 * L], S[..., 2 * L:]


def _micro(S, N):
    tp, fp, fn = _split3(S)
    return _f1(tp.sum(-1), fp.sum(-1), fn.sum(-1))


def _macro(S, N):
    return _f1(*_split3(S)).mean(axis=-1)


def _samples_stats(pred, y):
    tp, fp, fn = (pred * y).sum(1), (pred * (1 - y)).sum(1), ((1 - pred) * y).sum(1)
    return _f1(tp, fp, fn)[:, None]


METRICS = {
    "f1_micro": Metric("f1_micro", True, _counts, _micro, decided=True),
    "f1_macro": Metric("f1_macro", True, _counts, _macro, decided=True),
    "f1_samples": Metric("f1_samples", True, _samples_stats, lambda S, N: S[..., 0] / np.asarray(N, dtype=np.float64),
                         decided=True),
}


def decide(proba: np.ndarray, threshold) -> np.ndarray:
    """0/1 decisions: probability at or above the threshold (a number, or one per label)."""
    return (np.asarray(proba) >= np.asarray(threshold, dtype=np.float64)).astype(np.float64)


class MultiLabel(ValueTask):
    """Multi-label heads (``problem_type="multi_label_classification"``)."""

    name = "multi_label"
    said = "multi-label"
    thresholded = True
    heads = ("multi-label classification",)
    output = "logits"
    combine_rules = ("prob", "logit", "rank")
    methods = ("uniform", "score", "optimize", "select", "stack")
    metrics = ("f1_micro", "f1_macro", "f1_samples")
    metric_table = METRICS
    what = "label"

    def metric_value(self, metric: str, proba: np.ndarray, y: np.ndarray, threshold=0.5) -> float:
        m = self.metric(metric)
        return m(decide(proba, threshold), y)

    def fold_mean(self, arrays):
        """The logit of the fold models' mean probability (so that the group reads as one member)."""
        return logit(np.mean([sigmoid(a) for a in arrays], axis=0))

    def targets(self, split, names: Sequence[str], model: str) -> np.ndarray:
        """The truth as 0/1 (n, L), columns in the order of the head's labels ``names``: one 0/1
        column per label, or one column of labels joined by ``label_sep``."""
        split.require_labels("the true labels are needed here")
        sep = getattr(split, "label_sep", None)
        if sep is not None:
            return _joined(split, names, sep, model)
        cols = split.label_columns or (split.label_column,)
        if len(cols) == 1 and len(names) > 1:
            raise EnsembleError(f"{split.path}: one label column {cols[0]!r} for {model}'s {len(names)} labels; "
                                f"{option('label', ','.join(names[:3]))} (one 0/1 column per label), or "
                                f"{option('label_sep', ',')} when the column joins the labels")
        order = match_names(cols, names, path=split.path, model=model, what="label")
        cells = label_matrix(split)
        out = np.empty(cells.shape, dtype=np.float64)
        for j, col in enumerate(cols):
            for i, v in enumerate(cells[:, j]):
                s = str(v).strip()
                if s in ("1", "1.0", "True", "true"):
                    out[i, j] = 1.0
                elif s in ("0", "0.0", "False", "false"):
                    out[i, j] = 0.0
                else:
                    raise EnsembleError(f"{split.path}: column {col!r} row {i + 1} holds {s[:30]!r}; a multi-label "
                                        "column holds 0 or 1 in every row")
        return out[:, order]

    def check_settings(self, *, threshold, clip) -> None:
        from ensemble.core.errors import flag

        check_thresholds(threshold, what=flag("threshold"))
        super().check_settings(threshold=threshold, clip=clip)

    def own_decisions(self, outputs):
        return decide(sigmoid(outputs), 0.5)

    def member_row(self, outputs, y):
        """Decided at 0.5, and the mean average precision of its probabilities."""
        row = {m: self.metric(m)(self.own_decisions(outputs), y) for m in self.metrics}
        row["average_precision"] = average_precision(sigmoid(outputs), y)
        return row

    def combine(self, arrays, weights=None, rule=None):
        return combine_probabilities(arrays, weights, rule or self.combine_rules[0])

    def mean_space(self, outputs):
        return sigmoid(np.asarray(outputs, dtype=np.float64))

    def predict(self, proba, labels, threshold=0.5):
        return decide(proba, threshold)

    def submission(self, ids, proba, labels, *, threshold=0.5, **options):
        return multilabel_submission(ids, proba, labels, threshold=threshold, **options)


def _joined(split, names, sep: str, model: str) -> np.ndarray:
    names = [str(n) for n in names]
    index = {n: j for j, n in enumerate(names)}
    labels = np.asarray(split.labels, dtype=object)
    if labels.ndim != 1:
        raise EnsembleError(f"{split.path}: label_sep joins the labels of one column; give one label column with it")
    out = np.zeros((len(labels), len(names)), dtype=np.float64)
    for i, v in enumerate(labels):
        for part in str(v).split(sep):
            part = part.strip()
            if not part:
                continue
            if part not in index:
                raise EnsembleError(f"{split.path}: row {i + 1} names label {part!r}, not a label of {model} "
                                    f"({', '.join(names)}); fix the label column or the model's id2label")
            out[i, index[part]] = 1.0
    return out


def combine_probabilities(arrays: Sequence[np.ndarray], weights=None, rule: str = "prob") -> np.ndarray:
    """The weighted combination of M aligned logit arrays (n, L) into probabilities (n, L).

    - "prob": the weighted mean of the sigmoids.
    - "logit": the sigmoid of the weighted mean of the logits.
    - "rank": the weighted mean of each member's ranks per label, divided by n (in (0, 1]).
    """
    M = len(arrays)
    w = np.full(M, 1.0 / M) if weights is None else np.asarray(weights, dtype=np.float64)
    if w.shape != (M,) or not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
        raise EnsembleError(f"weights must be {M} finite, non-negative numbers, not all zero; got "
                            f"{np.ravel(w).tolist()}")
    w = w / w.sum()
    if rule == "prob":
        return sum(wi * sigmoid(a) for wi, a in zip(w, arrays) if wi)
    if rule == "logit":
        return sigmoid(sum(wi * np.asarray(a, dtype=np.float64) for wi, a in zip(w, arrays)))
    if rule == "rank":
        from ensemble.core.combination import rank_mean

        used = [(wi, a) for wi, a in zip(w, arrays) if wi]
        return rank_mean([a for _, a in used], [wi for wi, _ in used])
    raise EnsembleError(f"combine rule must be one of prob, logit, rank; got {rule!r}")


def multilabel_submission(ids, proba: np.ndarray, labels: Sequence[str], *, threshold=0.5, sample_submission=None,
                          proba_columns: bool = False, id_column: str = "id", label_sep: str | None = None, **_):
    """One 0/1 column per label (probabilities with ``proba_columns``), or, when the sample has
    one column after the id, the labels decided, joined by ``label_sep`` (default a space)."""
    import pandas as pd

    from ensemble.data.sample_submission import sample_order

    labels = [str(c) for c in labels]
    proba = np.asarray(proba, dtype=np.float64)
    pred = decide(proba, threshold).astype(np.int64)
    if sample_submission is None:
        frame, order = pd.DataFrame({id_column: np.asarray(ids, dtype=object)}), np.arange(len(ids))
    else:
        path = Path(sample_submission)
        sample, order = sample_order(path, ids)
        frame, rest = sample.copy(), list(sample.columns[1:])
        if len(rest) == 1 and len(labels) > 1:  # one column of joined labels
            if proba_columns:
                raise EnsembleError(f"{path}: one column of joined labels ({rest[0]}) has no room for probabilities; "
                                    f"drop {flag('proba')}, or pass a sample with one column per label")
            sep = label_sep or " "
            frame[rest[0]] = [sep.join(c for c, d in zip(labels, row) if d) for row in pred[order]]
            frame.attrs["sample_submission"] = str(path.resolve())
            return frame
        from ensemble.tasks.columns.base import sample_columns

        where = sample_columns(path, rest, labels, what="label",
                               fix="with one column per label or one column of joined labels")
    for j, c in enumerate(labels):
        frame[c if sample_submission is None else where[c]] = proba[order, j] if proba_columns else pred[order, j]
    frame.attrs["sample_submission"] = None if sample_submission is None else str(Path(sample_submission).resolve())
    return frame


MULTI_LABEL = MultiLabel()


def average_precision(proba: np.ndarray, y: np.ndarray) -> float:
    """scikit-learn's macro average precision over the labels that occur (nan when none does)."""
    from sklearn.metrics import average_precision_score

    keep = y.sum(axis=0) > 0
    return float(average_precision_score(y[:, keep], proba[:, keep], average="macro")) if keep.any() else float("nan")
