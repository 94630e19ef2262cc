"""ensemble: checkpoint averaging, cached inference and honest soft voting for text classifiers.

The top level imports nothing heavy: names are loaded on first use, so that ``import ensemble``
and the CLI stay fast and ``vote`` / ``report`` never import torch or transformers.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_LAZY = {
    "average_checkpoints": "ensemble.averaging.build",
    "select_checkpoints": "ensemble.averaging.selection",
    "find_checkpoints": "ensemble.averaging.checkpoints",
    "rank_checkpoints": "ensemble.averaging.checkpoints",
    "rank_run": "ensemble.averaging.checkpoints",
    "EnsembleError": "ensemble.core.errors",
    "TopKAveragingCallback": "ensemble.averaging.callbacks",
    "load_split": "ensemble.data.splits",
    "Split": "ensemble.data.splits",
    "predict_logits": "ensemble.inference.predict",
    "Logits": "ensemble.core.outputs",
    "LogitCache": "ensemble.inference.cache",
    "vote": "ensemble.workflows.vote",
    "align": "ensemble.core.combination",
    "gather": "ensemble.workflows.gather",
    "fit_weights": "ensemble.combining.weighting",
    "Weights": "ensemble.combining.weights",
    "write_submission": "ensemble.workflows.submission",
    "cross_validate": "ensemble.estimates.crossval",
    "select_method": "ensemble.estimates.crossval",
    "Estimate": "ensemble.estimates.crossval",
    "report": "ensemble.workflows.report",
    "Report": "ensemble.workflows.render",
    "find_sweep": "ensemble.averaging.sweeps",
    "expand_members": "ensemble.averaging.sweeps",
    "Member": "ensemble.workflows.members",
    "resolve_members": "ensemble.workflows.members",
    "class_prior": "ensemble.data.priors",
    "fit_adjustment": "ensemble.combining.adjustment",
    "select_adjustment": "ensemble.estimates.adjustments",
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
