"""The fitted :class:`Weights`: turns the members' logits into ensemble probabilities, and is
saved to and loaded from the weights file."""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from ensemble.tasks.classification.offsets import Adjustment
from ensemble.core.combination import as_arrays, log_softmax, mix, softmax
from ensemble.core.errors import EnsembleError

log = logging.getLogger(__name__)
from ensemble.io.weightsfile import WEIGHTS_SCHEMA, check_weights, validate_weights, weights_checksum

__all__ = ['Weights']


# --------------------------------------------------------------------------- the fitted state


@dataclass(frozen=True)
class Weights:
    """Fitted ensemble weights and how to apply them.

    Attributes
    ----------
    method : str
        One of :data:`METHODS`, or "fixed" for weights given by hand.
    models : tuple of str
        Model names, in the order of ``weights``.
    weights : ndarray, shape (M,)
        Non-negative, summing to 1 (all zero but unused for "stack").
    combine : str
        How probabilities are combined: "prob", "logit", "geometric" or "vote".
    labels : tuple of str
        Class names, in column order.
    temperatures : ndarray of shape (M,) or None
        Per-model temperatures applied to the logits before combining.
    calibration : float or None
        Temperature applied to the combined log-probabilities.
    stacker : dict or None
        For "stack": ``coef`` (K, F), ``intercept`` (K,), ``classes`` of the logistic regression
        over the models' log-probabilities; or, above :data:`STACK_FULL_CLASSES` classes, ``kind``
        "classwise", ``coef`` (M, C) and ``intercept`` (C,).
    apparent : dict
        Scores on the validation rows the weights were fitted on (optimistic).
    meta : dict
        Provenance: validation data digest and rows, models' digests and cache keys, options.
    adjustment : dict or None
        A class-prior adjustment applied last (:class:`ensemble.tasks.classification.offsets.Adjustment` as a dict:
        kind, per-class offsets, the priors involved).
    """

    method: str
    models: tuple[str, ...]
    weights: np.ndarray
    combine: str = "prob"
    labels: tuple[str, ...] = ()
    temperatures: np.ndarray | None = None
    calibration: float | None = None
    stacker: Mapping | None = None
    apparent: Mapping = field(default_factory=dict)
    meta: Mapping = field(default_factory=dict)
    adjustment: Mapping | None = None

    def __repr__(self) -> str:
        parts = [f"method={self.method!r}", f"combine={self.combine!r}"]
        if self.stacker is None:
            parts += [f"{m}={w:.3f}" for m, w in zip(self.models, self.weights)]
        else:
            parts.append(f"stacker=LogisticRegression over {len(self.models)} models")
        if self.temperatures is not None:
            parts.append("T=[" + ", ".join(f"{t:.2f}" for t in self.temperatures) + "]")
        if self.calibration is not None:
            parts.append(f"calibration={self.calibration:.3f}")
        if self.adjustment is not None and self.adjustment.get("kind") != "none":
            off = self.adjustment["offsets"]
            parts.append(f"adjust={self.adjustment['kind']}[" + (", ".join(f"{v:+.2f}" for v in off) if len(off) <= 10 else
                         f"{len(off)} offsets, largest {max(off, key=abs):+.2f}") + "]")
        parts += [f"valid_{k}={v:.4f}" for k, v in self.apparent.items()]
        return f"Weights({', '.join(parts)})"

    # ------------------------------------------------------------------ applying

    def predict_proba(self, logits: Sequence[np.ndarray]) -> np.ndarray:
        """Ensemble probabilities, shape (n, C), from each model's logits: Logits (put in this
        fit's class order by name, and in the first model's row order), or arrays (n, C) already
        in :attr:`labels` order."""
        logits, _, _ = as_arrays(logits, labels=self.labels or None)
        if len(logits) != len(self.models):
            raise EnsembleError(f"got logits of {len(logits)} models, the weights are for {len(self.models)} "
                                f"({', '.join(self.models)})")
        check_finite(self.models, logits)  # as fit_weights does: a NaN row's argmax would be class 0
        z = list(logits)
        if self.temperatures is not None:
            z = [np.asarray(a, dtype=np.float64) / t for a, t in zip(z, self.temperatures)]
        return self._apply(z, [log_softmax(a) for a in z] if self.combine != "logit" or self.stacker else [])

    def apply(self, logits: Sequence[np.ndarray]) -> np.ndarray:
        """:meth:`predict_proba`, under the name every fitted method of :mod:`ensemble.tasks.classification.procedure`
        answers to."""
        return self.predict_proba(logits)

    def _apply(self, z: Sequence[np.ndarray], log_probs: Sequence[np.ndarray]) -> np.ndarray:
        """Probabilities from temperature-scaled logits ``z`` and their log-probabilities."""
        if self.stacker is not None and self.stacker.get("kind") == "classwise":
            proba = classwise_proba(self.stacker, log_probs)
        elif self.stacker is not None:
            proba = stack_proba(self.stacker, clr(log_probs), len(self.labels) or z[0].shape[1])
        else:
            proba = mix(log_probs, self.weights, self.combine, z)
        if self.calibration is not None:
            proba = softmax(np.log(np.clip(proba, EPS, None)) / self.calibration)
        if self.adjustment is not None:
            proba = Adjustment.from_dict(self.adjustment).apply(proba)
        return proba

    # ------------------------------------------------------------------ saving

    def to_dict(self) -> dict:
        return {
            "schema": WEIGHTS_SCHEMA,
            "method": self.method,
            "combine": self.combine,
            "labels": list(self.labels),
            "models": [
                {"name": m, "weight": float(w),
                 "temperature": None if self.temperatures is None else float(self.temperatures[i]),
                 **dict(self.meta.get("models", {}).get(m, {}))}
                for i, (m, w) in enumerate(zip(self.models, self.weights))
            ],
            "calibration": self.calibration,
            "stacker": None if self.stacker is None else {k: v if k == "kind" else np.asarray(v).tolist()
                                                          for k, v in self.stacker.items()},
            "apparent": dict(self.apparent),
            "adjustment": None if self.adjustment is None else dict(self.adjustment),
            "meta": {k: v for k, v in self.meta.items() if k != "models"},
        }

    def save(self, path: str | os.PathLike) -> Path:
        """Write the weights as JSON, atomically (a temporary file, then rename)."""
        from ensemble.io.atomic import atomic_write

        doc = self.to_dict()
        doc["blake3"] = weights_checksum(doc)
        return atomic_write(path, lambda tmp: tmp.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8"))

    @classmethod
    def from_dict(cls, d: Mapping) -> Weights:
        """The Weights of a document written by :meth:`to_dict`, every field checked first (a
        ValueError saying what was expected and what came in)."""
        validate_weights(d)
        models = d["models"]
        names = tuple(m["name"] for m in models)
        weights = np.array([m["weight"] for m in models], dtype=np.float64)
        temps = [m.get("temperature") for m in models]
        stacker = d.get("stacker")
        meta = dict(d.get("meta", {}))
        meta["models"] = {m["name"]: {k: v for k, v in m.items() if k not in ("name", "weight", "temperature")}
                          for m in models}
        return cls(d["method"], names, weights, d.get("combine", "prob"), tuple(d.get("labels", ())),
                   None if any(t is None for t in temps) else np.array(temps, dtype=np.float64),
                   d.get("calibration"), None if stacker is None else {k: v if k == "kind" else np.array(v)
                                                                      for k, v in stacker.items()},
                   d.get("apparent", {}), meta, d.get("adjustment"))

    @classmethod
    def load(cls, path: str | os.PathLike) -> Weights:
        path = Path(path)
        try:
            d = json.loads(path.read_text(encoding="utf-8"))
            if d.get("schema") != WEIGHTS_SCHEMA:
                raise ValueError(f"schema {d.get('schema')!r}")
            recorded = d.pop("blake3", None)
            if recorded is None:
                raise ValueError("it has no checksum: edited, or not written by ensemble vote")
            if recorded != weights_checksum(d):
                raise ValueError("its checksum does not match its content: edited or damaged")
            w = cls.from_dict(d)
        except FileNotFoundError:
            raise EnsembleError(f"{path}: not found; pass a weights file written by ensemble vote") from None
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise EnsembleError(f"{path}: not a weights file of ensemble ({str(e)[:160]}); refit with ensemble vote "
                                "--weights <method> (or vote(..., weights=<method>))") from None
        check_weights(w.weights, str(path), stack=w.stacker is not None)
        if w.adjustment is not None:
            try:
                adj = Adjustment.from_dict(w.adjustment)
                if w.labels and len(adj.offsets) != len(w.labels) or not np.all(np.isfinite(adj.offsets)):
                    raise ValueError("offsets")
            except (ValueError, KeyError, TypeError) as e:
                raise EnsembleError(f"{path}: its class-prior adjustment is not valid ({str(e)[:60]}); refit with "
                                    "ensemble vote") from None
        return w


def classwise_proba(stacker: Mapping, log_probs: Sequence[np.ndarray]) -> np.ndarray:
    """The classwise stacker's probabilities: class c scored from the members' class c."""
    coef = np.asarray(stacker["coef"])
    z = np.asarray(stacker["intercept"], dtype=np.float64) + sum(
        coef[m] * centred(lp) for m, lp in enumerate(log_probs))
    return softmax(z)


def stack_proba(stacker: Mapping, features: np.ndarray, n_classes: int) -> np.ndarray:
    """A fitted LogisticRegression's predict_proba, from its coefficients (no sklearn needed)."""
    coef, intercept = np.asarray(stacker["coef"]), np.asarray(stacker["intercept"])
    classes = np.asarray(stacker["classes"]).astype(int)
    scores = features @ coef.T + intercept
    if coef.shape[0] == 1:  # binary: sklearn keeps one row, for classes[1]
        p1 = 1.0 / (1.0 + np.exp(-scores[:, 0]))
        sub = np.stack([1 - p1, p1], axis=1)
    else:
        sub = softmax(scores)
    out = np.zeros((len(features), n_classes))
    out[:, classes] = sub
    return out


def centred(lp: np.ndarray) -> np.ndarray:
    """A model's centred log-ratio transform of its probabilities: log p minus its row mean."""
    return lp - lp.mean(axis=1, keepdims=True)


def clr(log_probs: Sequence[np.ndarray]) -> np.ndarray:
    """Stacking features: each model's centred log-probabilities (:func:`centred`), side by side."""
    return np.hstack([centred(lp) for lp in log_probs])


EPS = 1e-15


def check_finite(names: Sequence[str], arrays: Sequence[np.ndarray]) -> None:
    """Every member's logits finite: NaN or infinite values are an error naming the member."""
    for name, a in zip(names, arrays):
        if not np.all(np.isfinite(a)):
            raise EnsembleError(f"logits of {name} hold NaN or infinite values; re-run ensemble predict")
