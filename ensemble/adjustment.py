"""A class-prior adjustment as fitted state: offsets added to the ensemble's log-probabilities.

The methods layer: :class:`~ensemble.weighting.Weights` applies one last, and
:mod:`ensemble.priors` fits and estimates them; this module imports neither.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np

from .combination import softmax

__all__ = ["ADJUSTMENTS", "Adjustment"]

ADJUSTMENTS = ("none", "prior", "fit")
_EPS = 1e-15


@dataclass(frozen=True)
class Adjustment:
    """Offsets added to the ensemble's log-probabilities.

    Attributes
    ----------
    kind : {"none", "prior", "fit"}
    offsets : ndarray (C,)
    labels : tuple of str
    target, source : ndarray (C,) or None
        The target prior and the validation's, when a prior was involved.
    metric : str or None
        What "fit" maximised.
    """

    kind: str
    offsets: np.ndarray
    labels: tuple[str, ...] = ()
    target: np.ndarray | None = None
    source: np.ndarray | None = None
    metric: str | None = None

    def apply(self, proba: np.ndarray) -> np.ndarray:
        """Adjusted probabilities, shape (n, C)."""
        if self.kind == "none":
            return proba
        return softmax(np.log(np.clip(proba, _EPS, None)) + self.offsets)

    def to_dict(self) -> dict:
        def lst(a):
            return None if a is None else [float(v) for v in a]

        return {"kind": self.kind, "offsets": lst(self.offsets), "labels": list(self.labels),
                "target_prior": lst(self.target), "validation_prior": lst(self.source), "metric": self.metric}

    @classmethod
    def from_dict(cls, d: Mapping) -> Adjustment:
        def arr(v):
            return None if v is None else np.asarray(v, dtype=np.float64)

        if d.get("kind") not in ADJUSTMENTS:
            raise ValueError(f"adjustment kind {d.get('kind')!r}")
        return cls(d["kind"], arr(d["offsets"]), tuple(d.get("labels", ())), arr(d.get("target_prior")),
                   arr(d.get("validation_prior")), d.get("metric"))
