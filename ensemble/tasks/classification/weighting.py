"""Fit ensemble weights on validation logits: uniform, accuracy, log-loss optimised, ensemble
selection, stacking; with optional temperature scaling per model and after combining.

numpy and scipy only (scikit-learn for ``stack``, imported when used): no torch, so that trying
one more method from cached logits takes about a second.

Every method returns a :class:`Weights`: the fitted state, kept apart from the arguments, that
turns the models' logits into ensemble probabilities (:meth:`Weights.predict_proba`) and saves
to and loads from JSON with what it was fitted on.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import replace
from typing import Sequence

import numpy as np

from ensemble.combining.ensemble_selection import ensemble_selection as selection_routine
from ensemble.core.combination import as_arrays, as_log_probs, class_lookup, log_softmax, probabilities
from ensemble.core.errors import EnsembleError, flag
from ensemble.core.options import METHODS, best_k, check_option, is_method
from ensemble.core.scores import CLASS_METRICS, need_classes, scores

log = logging.getLogger(__name__)
from ensemble.tasks.classification.weights import EPS, Weights, centred, check_finite, classwise_proba, clr, stack_proba

__all__ = ["fit_weights", "aligned_inputs", "fit_temperature"]

# LogisticRegression tolerance for "stack": on centred log-probabilities it converges in about
# ten L-BFGS iterations at 1e-3; scikit-learn's default 1e-4 doubles the time for no change in
# the predicted class on the benchmark.
STACK_TOL = 1e-3
# Up to this many classes "stack" is a multinomial LogisticRegression over every member's every
# class (M*C features and C outputs: M*C^2 coefficients, a cost that grows with the square of the
# classes); above it, the classwise stacker: each class's score is a weighted sum of the members'
# scores of that class plus a bias (M*C + C coefficients), linear in the classes.
STACK_FULL_CLASSES = 10


# --------------------------------------------------------------------------- temperature


def fit_temperature(logits: np.ndarray, y: np.ndarray) -> float:
    """The temperature T minimising the log loss of softmax(logits / T) (Guo et al., 2017):
    L-BFGS-B over log T in [-5, 5] with the analytic derivative."""
    from scipy.optimize import minimize

    z = np.asarray(logits, dtype=np.float64)
    rows = np.arange(len(y))
    zy = z[rows, y]
    ones = np.ones(z.shape[1])

    def f(theta):
        t = math.exp(theta[0])
        lp = log_softmax(z / t)
        expected = (np.exp(lp) * z) @ ones  # E_p[z] per row
        # d loss / d log T = mean(z_y - E_p[z]) / T
        return float(-lp[rows, y].mean()), np.array([float(np.mean(zy - expected)) / t])

    res = minimize(f, np.zeros(1), jac=True, method="L-BFGS-B", bounds=[(-5.0, 5.0)],
                   options={"gtol": 1e-9, "ftol": 1e-12})
    return float(math.exp(res.x[0]))


# --------------------------------------------------------------------------- fitting




def aligned_inputs(valid_logits, y) -> tuple[list[np.ndarray], tuple[str, ...], tuple[str, ...], np.ndarray]:
    """What every fit takes: the models' validation logits as aligned arrays and the true class
    indices.

    ``Logits`` are aligned by class name and row id (:func:`ensemble.core.combination.align`), so that
    members whose ``id2label`` orders differ are never combined column by column; plain arrays
    are taken as already aligned. ``y`` may be class indices, class names (``Split.labels``), or
    the labelled :class:`~ensemble.data.splits.Split` itself, whose ids then give the row order.

    Returns
    -------
    (arrays, names, labels, y)
        M arrays of shape (n, C), the model names, the class names in column order, y (n,) int.
    """
    split = y if hasattr(y, "label_indices") and hasattr(y, "ids") else None
    arrays, names, labels = as_arrays(valid_logits, ids=None if split is None else split.ids)
    shape = arrays[0].shape
    for name, a in zip(names, arrays):
        if a.ndim != 2 or a.shape != shape:
            raise EnsembleError(f"logits of {name} have shape {a.shape}, expected {shape} like {names[0]}; "
                                "align them first (ensemble.core.combination.align)")
    check_finite(names, arrays)
    if len(set(names)) != len(names):
        raise EnsembleError(f"model names repeat ({', '.join(names)}); give each model its own name")
    return arrays, names, labels, _class_indices(y if split is None else split.label_indices(labels, names[0]),
                                                 labels, shape[0])


def _class_indices(y, labels: Sequence[str], n: int) -> np.ndarray:
    """``y`` as class indices into ``labels``: indices pass through (checked), class names are
    looked up; anything else is a one-line error."""
    C = len(labels)
    y = np.asarray(y)
    if y.ndim != 1 or len(y) != n:
        raise EnsembleError(f"got {y.size if y.ndim else 1} labels for {n} validation rows")
    if y.dtype.kind in "USO":  # class names, as Split.labels holds them
        out, row = class_lookup(y, labels)
        if row is not None:
            generic = all(c.isdigit() for c in labels)
            raise EnsembleError(
                f"label {str(y[row])!r} (row {row + 1}) is not a class name of the models (classes: "
                f"{', '.join(labels[:10])}{', ...' if C > 10 else ''}); "
                + ("the logits are plain arrays without class names: pass Logits, or class indices 0.."
                   f"{C - 1}" if generic else "pass class indices or the models' class names"))
        return out
    if y.dtype.kind == "b" or not np.issubdtype(y.dtype, np.integer):
        raise EnsembleError(f"labels must be class indices in 0..{C - 1} or class names, got values of type {y.dtype}")
    if n and (y.min() < 0 or y.max() >= C):
        raise EnsembleError(f"labels must be class indices in 0..{C - 1}, got {int(y.min())}..{int(y.max())}")
    return y.astype(np.int64, copy=False)






def _member_scores(log_probs, y, metric: str) -> np.ndarray:
    """Each member's ``metric`` on the rows from its log-probabilities, signed so that higher is
    better (log loss negated). Only the log loss exponentiates them: the argmax (accuracy,
    macro-F1, kappa) and each column's order of the rows (ROC AUC) are the log-probabilities'."""
    from ensemble.core.scores import resampled_metric

    rows = np.arange(len(y))[None]
    sign = 1.0 if CLASS_METRICS[metric] else -1.0
    return np.array([sign * float(resampled_metric(metric, probabilities(as_log_probs(lp)) if metric == "log_loss"
                                                   else lp, y, rows)[0]) for lp in log_probs])


def _best_weights(log_probs, y, k: int, metric: str = "accuracy") -> np.ndarray:
    """Uniform weights over the ``k`` members with the best ``metric`` (ties: lower log loss)."""
    M = len(log_probs)
    if k > M:
        raise EnsembleError(f"best{k}: got {M} models; pick at most best{M}")
    rows = np.arange(len(y))
    # the tie-break's log loss from the true class's probability alone: the same values as
    # scoring exp(log_probs), without exponentiating every class
    first = _member_scores(log_probs, y, metric)
    key = [(-float(first[i]), float(-np.mean(np.log(np.clip(np.exp(lp[rows, y]), EPS, None)))), i)
           for i, lp in enumerate(log_probs)]
    order = [i for *_, i in sorted(key)]
    w = np.zeros(M)
    w[order[:k]] = 1.0 / k
    return w


def _acc_weights(probas, y, power: float, metric: str = "accuracy") -> np.ndarray:
    """Weights proportional to each member's ``metric`` raised to ``power``: its accuracy, macro-F1,
    ROC AUC or kappa (below 0 counts as 0), or the inverse of its log loss."""
    signed = _member_scores(probas, y, metric)
    acc = 1.0 / np.maximum(-signed, 1e-12) if metric == "log_loss" else np.maximum(np.nan_to_num(signed), 0.0)
    if not (acc > 0).any():
        raise EnsembleError(f"every model has validation {metric} 0 or below; {metric} weights are undefined")
    # in log space: acc ** 1e6 underflows to 0 for every model, its ratios do not
    with np.errstate(divide="ignore"):
        log_w = power * np.log(acc)
    w = np.exp(log_w - log_w.max()) if power > 0 else np.ones(len(acc))
    return w / w.sum()


def _simplex_objective(z: list[np.ndarray], log_probs: list[np.ndarray], y: np.ndarray, rule: str):
    """Validation log loss of the combined probabilities and its gradient in the weights w
    (on the simplex), for the rules "prob" (linear pool) and "logit"/"geometric"; matrix-vector
    products only, so one evaluation costs a pass over the data."""
    n = len(y)
    rows = np.arange(n)
    if rule in ("prob", "vote", "rank"):
        a = np.exp(np.stack([lp[rows, y] for lp in log_probs], axis=1))  # (n, M): p of the true class

        def f(w):
            s = np.clip(a @ w, EPS, None)
            return float(-np.mean(np.log(s))), -(a.T @ (1.0 / s)) / n

        return f
    source = z if rule == "logit" else log_probs
    C = source[0].shape[1]
    flat = np.stack([np.asarray(m, dtype=np.float64).reshape(-1) for m in source])  # (M, n*C)
    zy_mean = np.array([np.asarray(m, dtype=np.float64)[rows, y].mean() for m in source])

    def f(w):
        lp = log_softmax((w @ flat).reshape(n, C))
        loss = float(-lp[rows, y].mean())
        return loss, -(zy_mean - flat @ np.exp(lp).reshape(-1) / n)

    return f


def _optimize(z, log_probs, y, rule: str, starts: int, seed: int) -> tuple[np.ndarray, float]:
    """Minimise the validation log loss over the simplex, from the uniform start and
    ``starts - 1`` random Dirichlet starts.

    The weights are w = v / sum(v) over v >= 0, and L-BFGS-B keeps v in its bounds with the
    analytic gradient. Optima of ensemble weights usually lie on the simplex's boundary (some
    models get weight 0): the bounds reach it exactly, in about ten evaluations, where a softmax
    parametrisation needs logits running to minus infinity (about 60 evaluations here). The loss
    is convex in w for every rule (minus the log of a linear function; log-sum-exp of a linear
    function minus a linear one), so the starts are a check, not a search.
    """
    from scipy.optimize import minimize

    M = len(z)
    f = _simplex_objective(z, log_probs, y, rule)

    def g(v):
        total = v.sum()
        if not total > 0:
            return np.inf, np.zeros(M)
        w = v / total
        loss, grad_w = f(w)
        return loss, (grad_w - np.dot(w, grad_w)) / total  # chain rule through the normalisation

    rng = np.random.default_rng(seed)
    inits = [np.full(M, 1.0 / M)] + [rng.dirichlet(np.ones(M)) for _ in range(max(0, starts - 1))]
    best_w, best = None, np.inf
    for v0 in inits:
        res = minimize(g, v0, jac=True, method="L-BFGS-B", bounds=[(0.0, None)] * M,
                       options={"maxiter": 1000, "gtol": 1e-10, "ftol": 1e-13})
        w = res.x / res.x.sum()
        loss = f(w)[0]
        if loss < best:
            best_w, best = w, loss
    best_w = np.where(best_w < 1e-9, 0.0, best_w)
    return best_w / best_w.sum(), best


def ensemble_selection(probas: Sequence[np.ndarray], y: np.ndarray, *, iterations: int = 50,
                       init: int | None = None, return_trace: bool = False):
    """Caruana et al. (2004) ensemble selection with replacement, on validation log loss.

    Sorted initialisation: the models sorted by their own log loss; the best N join first, N
    being the size whose uniform mixture scores best (``init`` fixes N). Then each iteration adds
    (with replacement) the model that lowers the mixture's log loss most, ties to the lower
    index. The weights are the counts at the best iteration, not the last.

    Returns the weights (M,), and with ``return_trace`` the list of (model added, loss) steps.
    """
    rows = np.arange(len(y))
    return _selection(np.stack([p[rows, y] for p in probas], axis=1), iterations, init, return_trace)


class TrueClassPool:
    """Classification's :class:`~ensemble.combining.ensemble_selection.SelectionProblem`: the log
    loss of the linear pool, from each model's probability of the true class (n, M), floored so
    that no mixture is 0; a mixture is the running sum of those probabilities."""

    def __init__(self, true_proba: np.ndarray):
        self.a = np.clip(true_proba, EPS, None)
        self.members = self.a.shape[1]
        self.a_t = np.ascontiguousarray(self.a.T)  # (M, n): rows are models
        self.buf = np.empty_like(self.a_t)  # reused: fresh 8 MB temporaries cost more in page faults than the logs

    def single_losses(self) -> np.ndarray:
        return -np.log(self.a).mean(axis=0)

    def start(self, members):
        return self.a[:, members].sum(axis=1)

    def loss(self, sum_a, count: int) -> float:
        return float(np.log(count) - np.mean(np.log(sum_a)))

    def with_each(self, sum_a, count: int) -> np.ndarray:
        # every candidate at once: the mixture's log loss with each model added
        np.add(sum_a[None, :], self.a_t, out=self.buf)
        np.log(self.buf, out=self.buf)
        return np.log(count + 1) - self.buf.mean(axis=1)

    def add(self, sum_a, member: int):
        return sum_a + self.a[:, member]


def _selection(true_proba: np.ndarray, iterations: int, init: int | None, return_trace: bool):
    """:func:`ensemble_selection` on each model's probability of the true class, (n, M)."""
    return selection_routine(TrueClassPool(true_proba), iterations=iterations, init=init, return_trace=return_trace)


def _select(log_probs, y, iterations: int, bags: int, bag_fraction: float, seed: int) -> np.ndarray:
    """Ensemble selection; with ``bags`` > 1, run on random subsets of the models and average.
    Only the true class's probability counts: the others are never exponentiated."""
    M = len(log_probs)
    rows = np.arange(len(y))
    true_proba = np.exp(np.stack([lp[rows, y] for lp in log_probs], axis=1))
    if bags <= 1:
        return _selection(true_proba, iterations, None, False)
    rng = np.random.default_rng(seed)
    size = max(1, int(round(bag_fraction * M)))
    total = np.zeros(M)
    for _ in range(bags):
        idx = np.sort(rng.choice(M, size=size, replace=False))
        total[idx] += _selection(true_proba[:, idx], iterations, None, False)
    return total / total.sum()


def _stack(log_probs, y, n_classes: int, C: float, folds: int, seed: int) -> tuple[dict, np.ndarray]:
    """A stacker on the models' centred log-probabilities: a multinomial LogisticRegression for
    up to :data:`STACK_FULL_CLASSES` classes, the classwise stacker above; returns the fitted
    coefficients and its out-of-fold probabilities over ``folds`` stratified folds (none when 0)."""
    from sklearn.model_selection import StratifiedKFold

    if n_classes > STACK_FULL_CLASSES:
        def fit(rows):
            return _classwise([centred(lp[rows]) for lp in log_probs], y[rows], n_classes, C)

        def proba(stacker, rows):
            return classwise_proba(stacker, [lp[rows] for lp in log_probs])
    else:
        from sklearn.linear_model import LogisticRegression

        X = clr(log_probs)

        _quiet_convergence()

        def fit(rows):
            lr = LogisticRegression(C=C, max_iter=1000, tol=STACK_TOL).fit(X[rows], y[rows])
            if np.max(lr.n_iter_) >= lr.max_iter:
                _say_once("the stacker's logistic regression stopped at its 1000 iterations before converging (on "
                          "some folds at least); its figures are still cross-validated as they are")
            return {"coef": lr.coef_, "intercept": lr.intercept_, "classes": lr.classes_}

        def proba(stacker, rows):
            return stack_proba(stacker, X[rows], n_classes)

    every = np.arange(len(y))
    if folds == 0:
        return fit(every), None
    counts = np.bincount(y, minlength=n_classes)
    k = min(folds, int(counts[counts > 0].min()))
    if k < 2:
        raise EnsembleError("stack needs at least 2 validation rows of every class present; use another method")
    oof = np.zeros((len(y), n_classes))
    for train, test in StratifiedKFold(n_splits=k, shuffle=True, random_state=seed).split(every, y):
        oof[test] = proba(fit(train), test)
    return fit(every), oof


_SAID: set[str] = set()


def _say_once(message: str) -> None:
    """One log line per process, however many folds meet the same condition."""
    if message not in _SAID:
        _SAID.add(message)
        log.info("%s", message)


def _quiet_convergence() -> None:
    """scikit-learn's ConvergenceWarning off (one per fold: 48 lines in a report); the stacker
    says it once itself. A process-wide filter, since the folds run in threads."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning

    warnings.filterwarnings("ignore", category=ConvergenceWarning, module="sklearn")


def _classwise(xs: Sequence[np.ndarray], y: np.ndarray, n_classes: int, C: float) -> dict:
    """The classwise stacker: class c's score is ``sum_m A[m, c] * xs[m][:, c] + b[c]``, fitted by
    L-BFGS on the mean log loss plus ``|A|^2 / (2 C n)`` (LogisticRegression's penalty, per row),
    from the uniform pool (A = 1/M). A class with no row gets probability 0, as the full
    LogisticRegression gives it."""
    from scipy.optimize import minimize

    n, M, K = len(y), len(xs), n_classes
    rows = np.arange(n)
    absent = np.bincount(y, minlength=K) == 0
    reg = 1.0 / (C * n)
    X = np.empty((K, n, M), dtype=np.float32)  # class-major: each class's scores are one (n, M) matrix
    for m, x in enumerate(xs):
        X[:, :, m] = x.T

    def f(theta):
        A, b = theta[:M * K].reshape(M, K), theta[M * K:]
        # float32 where the cost is (the (K, n) passes), float64 for the sums L-BFGS sees
        z = np.matmul(X, A.T[:, :, None].astype(np.float32))[..., 0]  # (K, n)
        z += b[:, None].astype(np.float32)
        z[absent] = -1e9
        z -= z.max(axis=0)
        z_true = z[y, rows].astype(np.float64)
        g = np.exp(z, out=z)  # one exponential pass, in place: the softmax is g / its column sums
        total = g.sum(axis=0, dtype=np.float64)
        loss = float(np.mean(np.log(total) - z_true)) + 0.5 * reg * float(np.sum(A * A))
        g *= (1.0 / total).astype(np.float32)
        g[y, rows] -= 1.0
        g *= np.float32(1.0 / n)
        grad_a = np.matmul(g[:, None, :], X)[:, 0, :].T.astype(np.float64) + reg * A  # (M, K)
        grad_b = g.sum(axis=1, dtype=np.float64)
        grad_b[absent] = 0.0
        return loss, np.concatenate([grad_a.ravel(), grad_b])

    theta0 = np.concatenate([np.full(M * K, 1.0 / M), np.zeros(K)])
    res = minimize(f, theta0, jac=True, method="L-BFGS-B", options={"maxiter": 1000, "gtol": STACK_TOL})
    b = res.x[M * K:].copy()
    b[absent] = -1e9
    return {"kind": "classwise", "coef": res.x[:M * K].reshape(M, K), "intercept": b}


def fit_weights(
    valid_logits,
    y,
    method: str = "uniform",
    *,
    combine: str = "prob",
    temperature: bool = False,
    calibrate: bool = False,
    acc_power: float = 1.0,
    member_metric: str = "accuracy",
    starts: int = 5,
    iterations: int = 50,
    bags: int | None = None,
    bag_fraction: float = 0.5,
    stack_c: float = 1.0,
    folds: int = 3,
    seed: int = 0,
    names: Sequence[str] | None = None,
    stack_oof: bool = True,
    score: bool = True,
) -> Weights:
    """Fit ensemble weights on validation logits.

    Parameters
    ----------
    valid_logits : list of Logits or of arrays of shape (n, C)
        Each model's validation logits. Logits are aligned by class name and row id; arrays
        must be aligned already (same rows, same class order).
    y : array-like of int or of str, shape (n,), or Split
        True class indices, or class names (``Split.labels``), or the labelled validation
        :class:`~ensemble.data.splits.Split` (its ids give the row order).
    method : {"uniform", "acc", "optimize", "select", "stack", "best", "best<K>"}, default "uniform"
        - "uniform": 1/M each.
        - "acc": proportional to each model's validation ``member_metric`` (accuracy by default;
          the inverse for log loss), raised to ``acc_power``.
        - "optimize": minimise the validation log loss of the combined probabilities over the
          simplex (w = v / sum(v), v >= 0 by L-BFGS-B bounds, analytic gradient, ``starts``
          starts).
        - "select": Caruana's ensemble selection with replacement and sorted initialisation,
          best iteration kept; bagged over random halves of the models when ``bags`` > 1
          (default: 20 bags with 4 or more models, else none).
        - "best": the single model with the best validation ``member_metric`` (ties: lower log loss);
          "best<K>", e.g. "best3": the uniform average of the K best. Picking the best trial of
          a sweep on validation, as a fit whose honest score
          :func:`~ensemble.tasks.classification.estimate.cross_validate` measures.
        - "stack": a multinomial LogisticRegression on the models' centred log-probabilities
          (the centred log-ratio of each model's probabilities); its out-of-fold score over
          ``folds`` stratified folds (``cross_val_predict``, default 3: 100,000 rows x 10 models
          stay under 3 s on 2 cores) is kept in ``meta["oof"]``.
    combine : {"prob", "logit", "geometric", "vote", "rank"}, default "prob"
        How the weighted models are combined (see :func:`ensemble.core.combination.combine`). "optimize"
        fits "vote" and "rank" weights on the "prob" rule, as votes and ranks have no gradient.
    member_metric : {"accuracy", "macro_f1", "log_loss", "roc_auc", "qwk"}, default "accuracy"
        What "acc" and "best" score each member by (the vote's primary metric). "optimize",
        "select" and "stack" fit the log loss, a proper scoring rule, whatever the metric: the
        metric then decides among them (``weights=auto``).
    temperature : bool, default False
        Fit one temperature per model on validation log loss first (composes with any method).
    calibrate : bool, default False
        Fit a temperature on the combined probabilities last.
    names : sequence of str, optional
        Model names when arrays are given (default ``model0``...).
    stack_oof : bool, default True
        "stack": also compute the stacker's out-of-fold scores (skipped inside the folds of
        :func:`ensemble.tasks.classification.estimate.cross_validate`, which estimates the whole procedure itself).
    score : bool, default True
        Score the weights on the rows they were fitted on (``apparent``); skipped (left empty)
        inside the folds of an estimate, which scores them on the held-out rows instead.

    Returns
    -------
    Weights
    """
    if not is_method(method):
        raise EnsembleError(f"method must be one of {', '.join(METHODS)} or best<K>; got {method!r}")
    check_option("combine", combine)
    if member_metric not in CLASS_METRICS:
        raise EnsembleError(f"member_metric must be one of {', '.join(CLASS_METRICS)}; got {member_metric!r}")
    arrays, model_names, labels, y = aligned_inputs(valid_logits, y)
    if names is not None:
        if len(names) != len(arrays):
            raise EnsembleError(f"got {len(names)} names, {len(arrays)} models")
        model_names = tuple(names)
    n, C = arrays[0].shape
    if not (math.isfinite(acc_power) and acc_power >= 0):
        raise EnsembleError(f"acc_power must be a non-negative number, got {acc_power}")
    M = len(arrays)
    if method != "uniform":
        need_classes(y, flag("weights", method), labels)
    t0 = time.perf_counter()
    temps = np.array([fit_temperature(a, y) for a in arrays]) if temperature else None
    z = [np.asarray(a, dtype=np.float64) / t for a, t in zip(arrays, temps)] if temps is not None else arrays
    log_probs = [log_softmax(a) for a in z]
    stacker, meta = None, {"options": {"acc_power": acc_power, "member_metric": member_metric, "starts": starts, "iterations": iterations,
                                        "bags": bags, "seed": seed, "temperature": temperature,
                                        "calibrate": calibrate}}
    if method == "uniform":
        w = np.full(M, 1.0 / M)
    elif method == "acc":
        w = _acc_weights(log_probs, y, acc_power, member_metric)
    elif method == "optimize":
        w, _ = _optimize(z, log_probs, y, combine, starts, seed)
    elif best_k(method) is not None:
        w = _best_weights(log_probs, y, best_k(method), member_metric)
    elif method == "select":
        w = _select(log_probs, y, iterations, (20 if M >= 4 else 1) if bags is None else bags, bag_fraction, seed)
    else:
        stacker, oof = _stack(log_probs, y, C, stack_c, folds if stack_oof else 0, seed)
        w = np.zeros(M)
        if oof is not None:
            meta["oof"] = scores(oof, y)
    fitted = Weights(method, model_names, w, combine, labels, temps, None, stacker, {}, meta)
    if not (score or calibrate):
        meta["fit_seconds"] = time.perf_counter() - t0
        return fitted
    proba = fitted._apply(z, log_probs)
    if calibrate:
        fitted = replace(fitted, calibration=fit_temperature(np.log(np.clip(proba, EPS, None)), y))
        proba = fitted._apply(z, log_probs) if score else None
    meta["fit_seconds"] = time.perf_counter() - t0
    return replace(fitted, apparent=scores(proba, y)) if score else fitted
