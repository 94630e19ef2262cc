"""Every option's allowed values, declared once, and the checks that read them.

A value is checked up front, where it comes in (a keyword argument, a CLI flag or an
``ensemble.toml`` key), and refused in one line that says what was expected and what came in.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np

from ensemble.core.errors import EnsembleError, named

# "best": the one member with the best validation accuracy; "best<K>" (best3): the uniform
# average of the K best. Not weights in the usual sense but the same kind of fit on validation,
# so the same cross-validation estimates them: that is the winner's curse, measured.
METHODS = ("uniform", "acc", "optimize", "select", "stack", "best")

# Each option's allowed values, by the option's keyword name: the CLI's choices, the project
# file's checks and the library's up-front checks all read this table.
ALLOWED = {
    "combine": ("prob", "logit", "geometric", "vote", "rank"),  # how classifiers' outputs are combined
    "adjust": ("none", "prior", "fit", "auto"),  # class-prior adjustment of the ensemble
    "adjust_metric": ("accuracy", "macro_f1"),  # what a fitted adjustment maximises
    "quoting": ("auto", "csv", "none"),  # how a data file's double quotes are read
    "dtype": ("auto", "float32", "bfloat16", "float16"),  # inference precision
    "accumulate_dtype": ("float32", "float64"),  # the running sum of an average
    "soup": ("uniform", "greedy"),  # avg-ckpt --method: a uniform soup or a greedy one
    "words": ("first", "mean"),  # pre-split words: a word's first sub-token's outputs, or their mean
    "rouge_tokenizer": ("morphemes", "whitespace", "characters", "rouge_score"),  # the tokens ROUGE counts
    "rouge_aggregate": ("mean", "max"),  # a row's several references: each figure averaged, or the best
}


def allowed(name: str) -> tuple[str, ...]:
    """The allowed values of option ``name`` (:data:`ALLOWED`)."""
    return ALLOWED[name]


def check_option(name: str, value, *, exclude: tuple[str, ...] = (), called: str | None = None):
    """``value`` when it is one of option ``name``'s allowed values (less ``exclude``), else a
    one-line error that names the option for the face the user is in (``--combine``,
    ``combine=`` or the ensemble.toml key) and says what was expected and what came in.
    ``called``: the option's keyword where it differs from its name in the table."""
    values = tuple(v for v in ALLOWED[name] if v not in exclude)
    if value not in values:
        raise EnsembleError(f"{named(called or name)} must be one of {', '.join(values)}; got {value!r}")
    return value


def is_method(name: str) -> bool:
    """One of :data:`METHODS`, or ``best<K>`` with K >= 1."""
    return name in METHODS or best_k(name) is not None


def best_k(name: str) -> int | None:
    if name == "best":
        return 1
    if isinstance(name, str) and name.startswith("best") and name[4:].isdigit() and int(name[4:]) >= 1:
        return int(name[4:])
    return None


# What a vote weighs its members with when nothing says otherwise, the same for vote(), ensemble vote
# and ensemble run (read by cli.project.weights_setting): auto, a fitted method only when its
# estimated gain over uniform is sure, else uniform; uniform where no labelled rows can decide.
DEFAULT_WEIGHTS = "auto"

WEIGHTS_EXPECTED = (f"auto, one of {', '.join(METHODS)}, score, best<K> (best3), a weights .json file or numbers "
                    "w1,w2,...")


def weights_kind(spec: str) -> str:
    """What a ``--weights`` value names: "method" (a method name or auto), "file" (a weights
    .json, a path), "fixed" (numbers w1,w2,...; checked when they are parsed), else "unknown"."""
    if is_method(spec) or spec in ("auto", "score"):  # score: regression's and multi-label's acc
        return "method"
    if spec.endswith(".json") or os.path.sep in spec or Path(spec).is_file():
        return "file"
    try:
        [float(v) for v in spec.split(",")]
    except ValueError:
        return "unknown"
    return "fixed"


def check_thresholds(value, labels: Sequence[str] | None = None, what: str = "threshold"):
    """A threshold given by hand: one number, or one per label, each in (0, 1); "global" or
    "per_label" ask for it to be fitted."""
    if isinstance(value, str) and value in ("global", "per_label"):
        return value
    if isinstance(value, str):
        try:
            value = [float(v) for v in value.split(",")]
        except ValueError:
            raise EnsembleError(f"{what} must be global, per_label, a number in (0, 1) or one per label; "
                                f"got {value!r}") from None
    t = np.atleast_1d(np.asarray(value, dtype=np.float64))
    if t.ndim != 1 or not np.all(np.isfinite(t)) or np.any(t <= 0) or np.any(t >= 1):
        raise EnsembleError(f"{what} must be in (0, 1) (a probability the label is decided at); got {t.tolist()}")
    if labels is not None and len(t) not in (1, len(labels)):
        raise EnsembleError(f"got {len(t)} thresholds, {len(labels)} labels ({', '.join(labels)}); give one, or one "
                            "per label in the labels' order")
    return float(t[0]) if len(t) == 1 else t
