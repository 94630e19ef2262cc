"""Weights (and thresholds) for members whose outputs are one column per target or label:
regression and multi-label classification (:mod:`ensemble.tasks.columns.base`).

Every method fits on aligned arrays and the truth, and returns a :class:`ValueWeights` that
applies to other rows of the same members:

- ``uniform``: equal weights.
- ``score``: weights from each member's own validation score (the analogue of classification's
  ``acc``): a correlation as it is (negative ones count 0), an error as its inverse square
  (inverse variance), multi-label by its mean average precision.
- ``optimize``: non-negative weights summing to 1 that minimise the loss (regression: squared
  error for RMSE / MCRMSE, absolute error for MAE, minus Pearson for the correlations, one weight
  vector per target; multi-label: the mean binary log loss, one vector for every label).
- ``select``: ensemble selection with replacement (Caruana et al., 2004) on the same loss.
- ``stack``: scikit-learn's ridge regression per target on the members' outputs (multi-label:
  a logistic regression per label on their logits).

Multi-label decisions need a threshold: ``"global"`` (one, fitted), ``"per_label"`` (one per
label, fitted), or numbers in (0, 1) given by hand; it is fitted after the weights, on the same
rows, maximising the primary metric, so that a cross-validation of the whole fit includes its
optimism. Regression outputs may be clipped to the fitting rows' range of each target.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np

from ensemble.combining.ensemble_selection import ensemble_selection
from ensemble.core.errors import EnsembleError
from ensemble.tasks.columns.multilabel import MULTI_LABEL
from ensemble.tasks.columns.regression import REGRESSION

__all__ = ["ValueWeights", "fit_value_weights", "VALUE_METHODS", "fit_threshold", "unfitted_labels", "column_task"]


def column_task(name: str):
    """The column task called ``name`` (as weights files and estimates record it)."""
    return {REGRESSION.name: REGRESSION, MULTI_LABEL.name: MULTI_LABEL}[name]

VALUE_METHODS = ("uniform", "score", "optimize", "select", "stack")
_GRID = np.round(np.arange(0.02, 0.99, 0.01), 2)


@dataclass
class ValueWeights:
    """Fitted weights of a regression or multi-label ensemble.

    Attributes
    ----------
    task : str
        "regression" or "multi_label".
    method : str
    models : tuple of str, length M
    weights : ndarray, shape (M,) or (M, T)
        Per member (and per target, for ``optimize`` on several targets); rows sum to 1 per column.
    combine : str
        The task's combination rule.
    names : tuple of str, length T
        The targets' (labels') names, in column order.
    stacker : mapping, optional
        ``stack``: ``coef`` (T, M) and ``intercept`` (T,).
    threshold : float or ndarray (T,), optional
        Multi-label: the probability a label is decided at.
    clip : tuple of two ndarrays (T,), optional
        Regression: the range outputs are clipped to.
    apparent : mapping
        The metrics of this fit on the rows it was fitted on.
    """

    task: str
    method: str
    models: tuple
    weights: np.ndarray
    combine: str
    names: tuple
    stacker: Mapping | None = None
    threshold: object = None
    clip: tuple | None = None
    apparent: Mapping = field(default_factory=dict)
    meta: Mapping = field(default_factory=dict)

    @property
    def labels(self) -> tuple:
        """The outputs' names (as :class:`~ensemble.tasks.classification.weights.Weights` names its classes)."""
        return self.names

    def combined(self, arrays: Sequence[np.ndarray]) -> np.ndarray:
        """The ensemble's outputs (regression: values; multi-label: probabilities), (n, T)."""
        task = column_task(self.task)
        if self.stacker is not None:
            out = _stacked(self.task, self.stacker, arrays)
        else:
            out = task.combine(arrays, self.weights, self.combine)
        if self.clip is not None:  # a stacker's outputs too: clipping is the procedure's, whatever the weights
            out = np.clip(out, self.clip[0], self.clip[1])
        return out

    def decided(self, arrays: Sequence[np.ndarray], combined: np.ndarray | None = None) -> np.ndarray:
        """What is submitted and scored: the values (regression) or 0/1 decisions (multi-label)."""
        out = self.combined(arrays) if combined is None else combined
        if self.task == "multi_label":
            from ensemble.tasks.columns.multilabel import decide

            return decide(out, self.threshold)
        return out

    # ------------------------------------------------------------------ the file

    def to_dict(self) -> dict:
        def listed(v):
            return None if v is None else np.asarray(v, dtype=np.float64).tolist()

        return {"format": "ensemble.value-weights/1", "task": self.task, "method": self.method,
                "models": list(self.models), "weights": listed(self.weights), "combine": self.combine,
                "names": list(self.names),
                "stacker": None if self.stacker is None else {k: listed(v) for k, v in self.stacker.items()},
                "threshold": self.threshold if self.threshold is None or np.ndim(self.threshold) == 0
                else listed(self.threshold),
                "clip": None if self.clip is None else [listed(self.clip[0]), listed(self.clip[1])],
                "apparent": dict(self.apparent), "meta": dict(self.meta)}

    def save(self, path) -> None:
        """The weights file, with a checksum of its content, written atomically."""
        from ensemble.io.weightsfile import write_sealed

        write_sealed(path, self.to_dict(), default=_jsonable)  # plain JSON types, as load reads them

    @classmethod
    def load(cls, path) -> "ValueWeights":
        from ensemble.io.weightsfile import read_sealed

        return read_sealed(path, "ensemble.value-weights/1", "a regression or multi-label weights file", cls._checked)

    @classmethod
    def _checked(cls, d: Mapping) -> "ValueWeights":
        """The weights of a document, each field's type and shape checked (a ValueError saying
        which is wrong)."""
        if d["task"] not in (REGRESSION.name, MULTI_LABEL.name):
            raise ValueError(f"task {d['task']!r} is not regression or multi_label")
        models, names = tuple(str(m) for m in d["models"]), tuple(str(n) for n in d["names"])
        M, T = len(models), len(names)
        w = np.asarray(d["weights"], dtype=np.float64)
        if w.shape not in ((M,), (M, T)) or not np.all(np.isfinite(w)) or np.any(w < 0):
            raise ValueError(f"weights must be {M} (or {M}x{T}) finite non-negative numbers")
        stacker = None
        if d.get("stacker") is not None:
            stacker = {k: np.asarray(d["stacker"][k], dtype=np.float64) for k in ("coef", "intercept")}
            if stacker["coef"].shape != (T, M) or stacker["intercept"].shape != (T,):
                raise ValueError(f"stacker must have coef {T}x{M} and intercept {T}")
        threshold = d.get("threshold")
        if threshold is not None:
            threshold = float(threshold) if np.ndim(threshold) == 0 else np.asarray(threshold, dtype=np.float64)
            if np.shape(threshold) not in ((), (T,)) or not np.all((np.asarray(threshold) > 0) & (np.asarray(threshold) < 1)):
                raise ValueError(f"threshold must be one number or {T}, each in (0, 1)")
        clip = None
        if d.get("clip") is not None:
            clip = (np.asarray(d["clip"][0], dtype=np.float64), np.asarray(d["clip"][1], dtype=np.float64))
            if clip[0].shape != (T,) or clip[1].shape != (T,) or np.any(clip[0] > clip[1]):
                raise ValueError(f"clip must be [low, high], {T} numbers each, low <= high")
        if not isinstance(d["method"], str) or not isinstance(d["combine"], str):
            raise ValueError("method and combine must be names")
        return cls(d["task"], d["method"], models, w, d["combine"], names, stacker, threshold, clip,
                   dict(d.get("apparent") or {}), dict(d.get("meta") or {}))


def _jsonable(v):
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, np.generic):
        return v.item()
    raise TypeError(f"{type(v).__name__} is not JSON")


# ---------------------------------------------------------------------- losses


def _loss(task: str, metric: str):
    """The smooth loss a method minimises over combined outputs P (n, T) for the truth Y."""
    if task == "multi_label":
        def bce(P, Y):
            P = np.clip(P, 1e-7, 1 - 1e-7)
            return -float(np.mean(Y * np.log(P) + (1 - Y) * np.log1p(-P)))
        return bce
    if metric == "mae":
        return lambda P, Y: float(np.mean(np.abs(P - Y)))
    if metric in ("pearson", "spearman"):
        from ensemble.tasks.columns.regression import METRICS

        return lambda P, Y: -METRICS["pearson"](P, Y)
    return lambda P, Y: float(np.mean((P - Y) ** 2))


def _simplex(f, M: int, jac=None) -> np.ndarray:
    """Non-negative weights summing to 1 that minimise ``f`` (SLSQP from uniform; ``jac``, its
    gradient, when known)."""
    from scipy.optimize import minimize

    w0 = np.full(M, 1.0 / M)
    if M == 1:
        return w0
    res = minimize(f, w0, jac=jac, method="SLSQP", bounds=[(0.0, 1.0)] * M,
                   constraints=({"type": "eq", "fun": lambda w: w.sum() - 1.0},),
                   options={"maxiter": 200, "ftol": 1e-10})
    w = np.clip(res.x if np.all(np.isfinite(res.x)) else w0, 0.0, None)
    w = w / w.sum() if w.sum() > 0 else w0
    return w if f(w) <= f(w0) else w0


def _linear_parts(task, arrays, rule):
    """The arrays whose weighted mean is the combination, when the rule is one (regression's
    "mean": the outputs; multi-label's "prob": the sigmoids, computed once), else None."""
    if (task, rule) == ("regression", "mean"):
        return arrays
    if (task, rule) == ("multi_label", "prob"):
        from ensemble.tasks.columns.multilabel import sigmoid

        return [sigmoid(a) for a in arrays]
    return None


def _gradient(task: str, metric: str):
    """The loss's gradient in the weights of a weighted mean of ``parts``, where one is known
    (squared error, binary log loss); else None (SLSQP differences it)."""
    if task == "multi_label":
        def bce(w, parts, Y):
            P = np.clip(sum(wi * p for wi, p in zip(w, parts)), 1e-7, 1 - 1e-7)
            d = -(Y / P - (1 - Y) / (1 - P)) / Y.size
            return np.array([float(np.sum(d * p)) for p in parts])
        return bce
    if metric in ("rmse", "mcrmse"):
        def mse(w, parts, Y):
            d = 2 * (sum(wi * p for wi, p in zip(w, parts)) - Y) / Y.size
            return np.array([float(np.sum(d * p)) for p in parts])
        return mse
    return None


def _optimize(task, arrays, y, rule: str, metric: str) -> np.ndarray:
    t = column_task(task)
    loss = _loss(task, metric)
    M = len(arrays)
    parts = _linear_parts(task, arrays, rule)
    grad = _gradient(task, metric) if parts is not None else None

    def fitted(cols: slice) -> np.ndarray:  # one weight vector for these columns
        Y = y[:, cols]
        if parts is None:
            sub = [a[:, cols] for a in arrays]
            return _simplex(lambda w: loss(t.combine(sub, np.clip(w, 0, None) + 1e-12, rule), Y), M)
        ps = [p[:, cols] for p in parts]
        return _simplex(lambda w: loss(sum(wi * p for wi, p in zip(w, ps)), Y), M,
                        None if grad is None else (lambda w: grad(w, ps, Y)))

    if task == "multi_label":
        return fitted(slice(None))
    W = np.stack([fitted(slice(j, j + 1)) for j in range(y.shape[1])], axis=1)  # one vector per target
    return W if W.shape[1] > 1 else W[:, 0]


class _Mixtures:
    """The column tasks' :class:`~ensemble.combining.ensemble_selection.SelectionProblem`: the
    metric's loss of a weighted combination. For the rules that are a weighted mean (regression's
    "mean", multi-label's "prob") a mixture is the running sum of the members' parts, one array
    operation per candidate; for the others, the counts, combined by the task's rule."""

    def __init__(self, task, arrays, y, rule: str, metric: str):
        self.t, self.arrays, self.y, self.rule = column_task(task), arrays, y, rule
        self.loss_of = _loss(task, metric)
        self.parts = _linear_parts(task, arrays, rule)
        self.members = len(arrays)

    def single_losses(self) -> np.ndarray:
        return np.array([self.loss(self.start([m]), 1) for m in range(self.members)])

    def start(self, members):
        if self.parts is None:
            counts = np.zeros(self.members)
            counts[list(members)] = 1
            return counts
        total = self.parts[members[0]].copy()
        for m in members[1:]:
            total = total + self.parts[m]
        return total

    def loss(self, state, count: int) -> float:
        if self.parts is None:
            return self.loss_of(self.t.combine(self.arrays, state, self.rule), self.y)
        return self.loss_of(state / count, self.y)

    def with_each(self, state, count: int) -> np.ndarray:
        return np.array([self.loss(self.add(state, m), count + 1) for m in range(self.members)])

    def add(self, state, member: int):
        if self.parts is None:
            return state + np.eye(self.members)[member]
        return state + self.parts[member]


def _select(task, arrays, y, rule: str, metric: str, iterations: int = 50) -> np.ndarray:
    """Ensemble selection with replacement (:func:`~ensemble.combining.ensemble_selection.ensemble_selection`,
    the routine every task shares) on the metric's loss."""
    return ensemble_selection(_Mixtures(task, arrays, y, rule, metric), iterations=iterations)


def _average_precision(p: np.ndarray, y: np.ndarray) -> float:
    """Mean over the labels that occur of each label's average precision (the mean precision at
    the rank of each positive; ties broken by row order): for weights, where scikit-learn's exact
    tie handling is not needed and its cost is."""
    keep = np.flatnonzero(y.sum(axis=0) > 0)
    if not len(keep):
        return 1.0
    out = []
    for j in keep:
        hits = y[np.argsort(-p[:, j], kind="stable"), j]
        tp = np.cumsum(hits)
        out.append(float(np.sum(hits * tp / np.arange(1, len(hits) + 1)) / tp[-1]))
    return float(np.mean(out))


def _score(task, arrays, y, metric: str) -> np.ndarray:
    M = len(arrays)
    if task == "multi_label":
        s = np.array([_average_precision(np.asarray(a, dtype=np.float64), y) for a in arrays])
    else:
        t = column_task(task)
        m = t.metric(metric)
        s = np.array([m(a, y) for a in arrays])
        s = np.maximum(s, 0.0) if m.greater else 1.0 / np.maximum(s, 1e-12) ** 2
    return s / s.sum() if s.sum() > 0 else np.full(M, 1.0 / M)


def _stack(task, arrays, y) -> dict:
    X = np.stack([np.asarray(a, dtype=np.float64) for a in arrays], axis=-1)  # (n, T, M)
    T, M = y.shape[1], len(arrays)
    coef, intercept = np.zeros((T, M)), np.zeros(T)
    if task == "regression":
        from sklearn.linear_model import RidgeCV

        for j in range(T):
            r = RidgeCV(alphas=np.logspace(-3, 3, 13)).fit(X[:, j, :], y[:, j])
            coef[j], intercept[j] = r.coef_, r.intercept_
        return {"coef": coef, "intercept": intercept}
    from sklearn.linear_model import LogisticRegression

    for j in range(T):
        if y[:, j].min() == y[:, j].max():  # one class on these rows: its share, whatever the members say
            p = np.clip(y[:, j].mean(), 1e-4, 1 - 1e-4)
            intercept[j] = np.log(p / (1 - p))
            continue
        r = LogisticRegression(C=1.0, max_iter=500).fit(X[:, j, :], y[:, j].astype(int))
        coef[j], intercept[j] = r.coef_[0], r.intercept_[0]
    return {"coef": coef, "intercept": intercept}


def _stacked(task: str, stacker: Mapping, arrays) -> np.ndarray:
    X = np.stack([np.asarray(a, dtype=np.float64) for a in arrays], axis=-1)
    z = np.einsum("ntm,tm->nt", X, np.asarray(stacker["coef"])) + np.asarray(stacker["intercept"])
    if task == "multi_label":
        from ensemble.tasks.columns.multilabel import sigmoid

        return sigmoid(z)
    return z


# ---------------------------------------------------------------------- thresholds


def _counts_at(proba: np.ndarray, y: np.ndarray, grid: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(tp, fp, fn) of every label at every threshold of ``grid``, each (G, L): from each label's
    sorted probabilities, without deciding a row per threshold."""
    G, L = len(grid), proba.shape[1]
    tp, fp = np.empty((G, L)), np.empty((G, L))
    for j in range(L):
        pos, neg = np.sort(proba[y[:, j] == 1, j]), np.sort(proba[y[:, j] == 0, j])
        tp[:, j] = len(pos) - np.searchsorted(pos, grid, side="left")  # p >= t decides the label
        fp[:, j] = len(neg) - np.searchsorted(neg, grid, side="left")
    fn = y.sum(axis=0)[None, :] - tp
    return tp, fp, fn


def _f1(tp, fp, fn):
    d = 2 * tp + fp + fn
    return np.where(d > 0, 2 * tp / np.where(d > 0, d, 1), 0.0)


def fit_threshold(proba: np.ndarray, y: np.ndarray, metric: str = "f1_micro", kind: str = "global"):
    """The threshold maximising ``metric`` on these rows: one for every label (``"global"``), or
    one per label (``"per_label"``, each maximising its own F1); a grid of 0.02 to 0.98."""
    from ensemble.tasks.columns.multilabel import METRICS, decide

    proba, y = np.asarray(proba, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if kind == "global" and metric == "f1_samples":  # per row: no shortcut through the label counts
        values = [METRICS[metric](decide(proba, t), y) for t in _GRID]
        return float(_GRID[int(np.argmax(values))])
    tp, fp, fn = _counts_at(proba, y, _GRID)
    if kind == "global":
        values = _f1(tp.sum(1), fp.sum(1), fn.sum(1)) if metric == "f1_micro" else _f1(tp, fp, fn).mean(axis=1)
        return float(_GRID[int(np.argmax(values))])
    per_label = _GRID[np.argmax(_f1(tp, fp, fn), axis=0)].astype(np.float64)
    # a label with no positive row has nothing to fit on (every threshold scores 0, the grid's first
    # would win and predict it everywhere): it takes the global threshold (unfitted_labels says which)
    empty = y.sum(axis=0) == 0
    if empty.any():
        per_label[empty] = fit_threshold(proba, y, metric, "global")
    return per_label


def unfitted_labels(y: np.ndarray, names: Sequence[str]) -> list[str]:
    """The labels with no positive row in ``y`` (n, L): a per-label threshold cannot be fitted for
    them, and :func:`fit_threshold` gives them the global one."""
    return [str(n) for n, e in zip(names, np.asarray(y).sum(axis=0) == 0) if e]


# ---------------------------------------------------------------------- the fit


def fit_value_weights(task: str, arrays: Sequence[np.ndarray], y: np.ndarray, method: str = "uniform", *,
                      names: Sequence[str] | None = None, targets: Sequence[str] | None = None,
                      metric: str | None = None, combine: str | None = None, threshold="global",
                      clip=False, given=None) -> ValueWeights:
    """Fit ``method`` on aligned outputs ``arrays`` (M of (n, T)) and the truth ``y`` (n, T).

    ``metric`` is the primary metric (the task's default for T); ``threshold`` (multi-label):
    "global", "per_label" or numbers in (0, 1); ``clip`` (regression): clip to y's range (True),
    or to a given ``(low, high)`` pair of (T,) arrays (the training labels' range). ``given``:
    weights given by hand (M,), for ``method`` "fixed": only the threshold and the clipping range
    are fitted on these rows then, as for every other method.
    """
    t = column_task(task)
    y = np.asarray(y, dtype=np.float64)
    arrays = [np.asarray(a, dtype=np.float64) for a in arrays]
    metric = metric or t.default_metric(y.shape[1])
    t.metric(metric)
    rule = combine or t.combine_rules[0]
    if rule not in t.combine_rules:
        raise EnsembleError(f"combine rule for {task} must be one of {', '.join(t.combine_rules)}; got {rule!r}")
    if method not in VALUE_METHODS and not (method == "fixed" and given is not None):
        raise EnsembleError(f"weights method for {task} must be one of {', '.join(VALUE_METHODS)} (or auto); "
                            f"got {method!r}")
    M = len(arrays)
    stacker = None
    if method == "fixed":
        w = np.asarray(given, dtype=np.float64)
        w = w / w.sum()
    elif method == "uniform":
        w = np.full(M, 1.0 / M)
    elif method == "score":
        w = _score(task, arrays, y, metric)
    elif method == "optimize":
        w = _optimize(task, arrays, y, rule, metric)
    elif method == "select":
        w = _select(task, arrays, y, rule, metric)
    else:
        stacker = _stack(task, arrays, y)
        w = np.full(M, 1.0 / M)
    fitted = ValueWeights(task, method, tuple(names or (f"model{i}" for i in range(M))), w, rule,
                          tuple(targets or (str(j) for j in range(y.shape[1]))), stacker)
    if clip is not False and clip is not None and task == "regression":
        # True: the fitting rows' range; a (low, high) pair: the one given (the training labels')
        fitted.clip = (y.min(axis=0), y.max(axis=0)) if clip is True else tuple(np.asarray(c, dtype=np.float64)
                                                                                 for c in clip)
    combined = fitted.combined(arrays)
    if task == "multi_label":
        from ensemble.core.options import check_thresholds

        kind = check_thresholds(threshold, fitted.names)
        fitted.threshold = fit_threshold(combined, y, metric, kind) if isinstance(kind, str) else kind
    decided = fitted.decided(arrays, combined)
    fitted.apparent = {m: t.metric(m)(decided, y) for m in t.metrics}
    return fitted
