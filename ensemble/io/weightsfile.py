"""The weights file (``ensemble.weights/1``): its schema, its checksum and its validation."""

from __future__ import annotations

import json
import logging
import math
from typing import Mapping

import numpy as np

from ensemble.core.combination import COMBINE_RULES
from ensemble.core.errors import EnsembleError

log = logging.getLogger(__name__)
from ensemble.core.options import METHODS, is_method

WEIGHTS_SCHEMA = "ensemble.weights/1"


def validate_weights(d: Mapping) -> None:
    """Every field of a weights document, checked before use: a ValueError that says what was
    expected and what came in (its checksum only proves the file was not changed since written)."""
    from ensemble.core.errors import NAME_RULE, is_name

    def real(v, what: str, positive: bool = False) -> float:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or (positive and v <= 0):
            raise ValueError(f"{what} must be a finite {'positive ' if positive else ''}number, got {v!r}")
        return float(v)

    method = d.get("method")
    if method != "fixed" and not (isinstance(method, str) and is_method(method)):
        raise ValueError(f"method must be one of {', '.join(METHODS)}, best<K> or fixed, got {method!r}")
    if d.get("combine", "prob") not in COMBINE_RULES:
        raise ValueError(f"combine must be one of {', '.join(COMBINE_RULES)}, got {d.get('combine')!r}")
    labels = d.get("labels")
    if not isinstance(labels, list) or not all(isinstance(c, str) for c in labels) or (d.get("stacker") and not labels):
        raise ValueError(f"labels must be a list of class names, got {labels!r}"[:160])
    models = d.get("models")
    if not isinstance(models, list) or not models or not all(isinstance(m, dict) for m in models):
        raise ValueError("models must be a list of {name, weight, ...}")
    names = [m.get("name") for m in models]
    if not all(is_name(n) for n in names):
        raise ValueError(f"model names must be {NAME_RULE}, got {names!r}"[:160])
    if len(set(names)) != len(names):
        raise ValueError(f"model names repeat: {names!r}")
    for m in models:
        real(m.get("weight"), f"the weight of {m['name']}")
        if m.get("temperature") is not None:
            real(m["temperature"], f"the temperature of {m['name']}", positive=True)
        if m.get("model_digest") is not None and not isinstance(m["model_digest"], str):
            raise ValueError(f"the model_digest of {m['name']} must be a string, got {m['model_digest']!r}")
    if d.get("calibration") is not None:
        real(d["calibration"], "calibration", positive=True)
    stacker = d.get("stacker")
    if (method == "stack") != (stacker is not None):
        raise ValueError("a stacker goes with method stack, and only with it")
    if stacker is not None and stacker.get("kind") == "classwise":
        C, M = len(labels), len(models)
        try:
            coef, intercept = np.asarray(stacker["coef"], dtype=float), np.asarray(stacker["intercept"], dtype=float)
        except (KeyError, TypeError, ValueError):
            raise ValueError("stacker must hold coef and intercept as numbers") from None
        if coef.shape != (M, C) or intercept.shape != (C,) or not np.all(np.isfinite(coef)) \
                or not np.all(np.isfinite(intercept)):
            raise ValueError(f"a classwise stacker's shapes must be coef ({M}, {C}), intercept ({C},); got coef "
                             f"{coef.shape}, intercept {intercept.shape}")
    elif stacker is not None:
        C, M = len(labels), len(models)
        try:
            coef, intercept = np.asarray(stacker["coef"], dtype=float), np.asarray(stacker["intercept"], dtype=float)
            classes = np.asarray(stacker["classes"])
        except (KeyError, TypeError, ValueError):
            raise ValueError("stacker must hold coef, intercept and classes as numbers") from None
        K = coef.shape[0] if coef.ndim == 2 else -1
        if coef.shape != (K, M * C) or intercept.shape != (K,) or not np.all(np.isfinite(coef)) \
                or not np.all(np.isfinite(intercept)) or classes.ndim != 1 \
                or len(classes) != (2 if K == 1 else K) or not np.issubdtype(classes.dtype, np.integer) \
                or classes.min() < 0 or classes.max() >= C:
            raise ValueError(f"stacker shapes must be coef (K, {M * C}), intercept (K,), classes of K (2 when K=1) "
                             f"indices below {C}; got coef {coef.shape}, intercept {intercept.shape}, classes "
                             f"{classes.shape}")


def read_sealed(path, fmt: str, what: str, check):
    """A task's weights file: its JSON read, its ``format`` checked to be ``fmt`` (else an error
    saying it is not ``what``), its checksum checked, then ``check(document)`` (a ValueError,
    KeyError, TypeError or IndexError saying which field is wrong); each failure one line naming
    the file and the fix."""
    from pathlib import Path

    try:
        d = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise EnsembleError(f"{path}: not found; pass a weights file that ensemble vote wrote") from None
    except ValueError as e:
        raise EnsembleError(f"{path}: not JSON ({e}); pass a weights file that ensemble vote wrote") from None
    if not isinstance(d, dict) or d.get("format") != fmt:
        raise EnsembleError(f"{path}: not {what} (format {d.get('format') if isinstance(d, dict) else None!r}); refit "
                            "with ensemble vote")
    try:
        recorded = d.pop("blake3", None)
        if recorded is None:
            raise ValueError("it has no checksum: edited, or not written by this version of ensemble vote")
        if recorded != weights_checksum(d):
            raise ValueError("its checksum does not match its content: edited or damaged")
        return check(d)
    except (ValueError, KeyError, TypeError, IndexError) as e:
        raise EnsembleError(f"{path}: not a weights file of ensemble ({str(e)[:160]}); refit with ensemble vote "
                            "--weights <method> (or vote(..., weights=<method>))") from None


def write_sealed(path, doc: Mapping, default=str) -> None:
    """A task's weights file: ``doc`` as plain JSON (``default`` turns what JSON lacks into it, as
    :func:`read_sealed` reads it back), sealed with its checksum, written atomically."""
    from ensemble.io.atomic import atomic_write

    doc = json.loads(json.dumps(doc, default=default))
    doc["blake3"] = weights_checksum(doc)
    text = json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
    atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def weights_checksum(doc: Mapping) -> str:
    """BLAKE3 of a weights document's canonical JSON (without its own checksum)."""
    from blake3 import blake3

    return blake3(json.dumps(doc, sort_keys=True, separators=(",", ":")).encode("utf-8")).hexdigest()


def check_weights(w: np.ndarray, where: str, stack: bool = False) -> None:
    if not np.all(np.isfinite(w)):
        raise EnsembleError(f"{where}: weights must be finite numbers, got {w.tolist()}")
    if w.size and np.abs(w).max() > 1e300:  # their sum would overflow: only their ratios matter
        raise EnsembleError(f"{where}: weights as large as {np.abs(w).max():g} overflow; scale them down (only their "
                            "ratios matter)")
    if np.any(w < 0):
        raise EnsembleError(f"{where}: weights must not be negative, got {w.tolist()}")
    if not stack and w.sum() <= 0:
        raise EnsembleError(f"{where}: weights sum to zero; give at least one model a positive weight")
