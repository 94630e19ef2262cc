"""ensemble: checkpoint averaging, cached inference and honest soft voting for text classifiers.

The top level imports nothing heavy: names are loaded on first use, so that ``import ensemble``
and the CLI stay fast and ``vote`` / ``report`` never import torch or transformers.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_LAZY = {
    "average_checkpoints": "ensemble.averaging",
    "select_checkpoints": "ensemble.averaging",
    "find_checkpoints": "ensemble.checkpoints",
    "rank_checkpoints": "ensemble.checkpoints",
    "rank_run": "ensemble.checkpoints",
    "EnsembleError": "ensemble.errors",
    "TopKAveragingCallback": "ensemble.callbacks",
    "load_split": "ensemble.data",
    "Split": "ensemble.data",
    "predict_logits": "ensemble.inference",
    "Logits": "ensemble.logits",
    "LogitCache": "ensemble.cache",
    "vote": "ensemble.voting",
    "align": "ensemble.voting",
    "gather": "ensemble.voting",
    "fit_weights": "ensemble.weighting",
    "Weights": "ensemble.weighting",
    "write_submission": "ensemble.submission",
    "cross_validate": "ensemble.estimate",
    "select_method": "ensemble.estimate",
    "Estimate": "ensemble.estimate",
    "report": "ensemble.report",
    "Report": "ensemble.report",
    "find_sweep": "ensemble.sweep",
    "expand_members": "ensemble.sweep",
    "Member": "ensemble.members",
    "resolve_members": "ensemble.members",
    "class_prior": "ensemble.priors",
    "fit_adjustment": "ensemble.priors",
    "select_adjustment": "ensemble.priors",
}

__all__ = sorted(_LAZY) + ["__version__"]


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'ensemble' has no attribute {name!r}")


def __dir__():
    return __all__
