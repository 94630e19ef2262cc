"""Target class priors: parsed from "uniform", shares ("a=0.3,b=0.7") or a file."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from ensemble.core.errors import EnsembleError, flag

__all__ = ['class_prior']


# --------------------------------------------------------------------------- priors


def class_prior(spec, labels: Sequence[str], *, columns: Mapping | None = None) -> np.ndarray:
    """A class prior in the order of ``labels``, shape (C,), summing to 1.

    Parameters
    ----------
    spec : str, path, mapping, sequence or Split
        "uniform"; ``"neg=0.6,pos=0.4"`` (shares by class name, normalised); a mapping of class
        name to share; a sequence of C shares in ``labels`` order; or a labelled data file (or
        :class:`~ensemble.data.splits.Split`), e.g. the training file: its label frequencies.
    labels : sequence of str
        The class names.
    columns : mapping, optional
        ``id``, ``text``, ``label``, ``encoding`` for reading a data file.
    """
    from ensemble.data.splits import Split, load_split

    C = len(labels)
    where = flag("prior")
    if isinstance(spec, (str, os.PathLike)) and _is_file_spec(spec) and not Path(spec).is_file():
        raise EnsembleError(f"{where} {os.fspath(spec)}: no such file; pass a labelled data file (the training file), "
                            f"'uniform', or shares like {labels[0]}=0.5,...")
    if isinstance(spec, Split) or (isinstance(spec, (str, os.PathLike)) and _is_file_spec(spec)):
        split = spec if isinstance(spec, Split) else load_split(
            spec, **{k: v for k, v in dict(columns or {}).items() if k != "label_if_present"}, require_label=True)
        y = split.label_indices(labels, model="the ensemble")
        counts = np.bincount(y, minlength=C).astype(float)
        missing = [labels[c] for c in range(C) if counts[c] == 0]
        if missing:
            raise EnsembleError(f"{split.path}: class {missing[0]!r} never occurs, so its prior would be 0; "
                                f"pass a file where every class occurs, or give the shares ({flag('prior', 'a=0.5,b=0.5')})")
        return counts / counts.sum()
    if isinstance(spec, str):
        if spec == "uniform":
            return np.full(C, 1.0 / C)
        pairs = {}
        for part in spec.split(","):
            name, sep, value = part.partition("=")
            if not sep:
                raise EnsembleError(f"{where} {spec!r}: expected 'uniform', a labelled data file, or shares like "
                                    f"{labels[0]}=0.5,...; {part!r} is none of these")
            pairs[name.strip()] = value.strip()
        spec = pairs
    if isinstance(spec, Mapping):
        unknown = [k for k in spec if k not in labels]
        if unknown:
            raise EnsembleError(f"{where}: class {unknown[0]!r} is not one of the models' classes ({', '.join(labels)})")
        missing = [c for c in labels if c not in spec]
        if missing:
            raise EnsembleError(f"{where}: no share for class {missing[0]!r}; give one for each of {', '.join(labels)}")
        spec = [spec[c] for c in labels]
    try:
        shares = np.asarray([float(v) for v in spec], dtype=np.float64)
    except (TypeError, ValueError):
        raise EnsembleError(f"{where}: shares must be numbers, got {spec!r}") from None
    if shares.shape != (C,):
        raise EnsembleError(f"{where}: got {len(shares)} shares for {C} classes ({', '.join(labels)})")
    if not np.all(np.isfinite(shares)) or np.any(shares <= 0):
        raise EnsembleError(f"{where}: every share must be a positive number, got {shares.tolist()}")
    return shares / shares.sum()


def _is_file_spec(spec) -> bool:
    s = os.fspath(spec)
    return s != "uniform" and "=" not in s


def prior_from_project(value: str, root: Path) -> str | Path:
    """A project file's ``prior``: "uniform" and shares as given, a file path relative to the file."""
    if not _is_file_spec(value):
        return value
    p = Path(value)
    return p if p.is_absolute() else root / p
