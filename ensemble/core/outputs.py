"""One model's logits over one split, with its sample ids and class names: what inference
computes, the cache stores and every combination reads. numpy only; imports none of them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

import numpy as np

__all__ = ['Logits']


@dataclass(frozen=True, eq=False)
class Logits:
    """One model's logits over one split.

    Attributes
    ----------
    ids : ndarray of str, shape (n,)
        Sample ids, in the split's row order.
    values : ndarray of float32, shape (n, C)
        Logits; column j is class ``labels[j]``.
    labels : tuple of str, length C
        Class names from the model's ``config.id2label``, in column order.
    model, split : str
        Names of the model and the split.
    meta : mapping
        Where the numbers came from: cache key and path, settings, digests.
    """

    ids: np.ndarray
    values: np.ndarray
    labels: tuple[str, ...]
    model: str = ""
    split: str = ""
    meta: Mapping = field(default_factory=dict)

    def __post_init__(self):
        if self.values.ndim != 2 or self.values.shape != (len(self.ids), len(self.labels)):
            raise ValueError(f"logits of shape {self.values.shape} do not match {len(self.ids)} ids "
                             f"and {len(self.labels)} labels")

    def __len__(self) -> int:
        return len(self.ids)

    def probabilities(self) -> np.ndarray:
        """Softmax over classes, shape (n, C), float64."""
        from scipy.special import softmax

        return softmax(self.values.astype(np.float64), axis=1)

    def predictions(self) -> np.ndarray:
        """The class index with the highest logit, shape (n,)."""
        return self.values.argmax(axis=1)
