"""ensemble: checkpoint averaging, cached inference and honest soft voting for fine-tuned models.

The top level holds what a final-submission notebook calls: the workflows (average, predict,
gather, vote, report) and the few types they take and return. Everything else is imported from
its subpackage (docs/architecture.md): ``ensemble.tasks.classification.weighting.fit_weights``,
``ensemble.tasks.classification.estimate.cross_validate``, ``ensemble.averaging.sweeps.find_sweep``...

Nothing heavy is imported here: names are loaded on first use, so that ``import ensemble`` and
the CLI stay fast and ``vote`` / ``report`` never import torch or transformers.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_LAZY = {
    # the workflows, in the order a notebook runs them
    "rank_run": "ensemble.averaging.checkpoints",
    "average_checkpoints": "ensemble.averaging.build",
    "load_split": "ensemble.data.splits",
    "predict_logits": "ensemble.workflows.predict",
    "gather": "ensemble.workflows.gather",
    "report": "ensemble.workflows.report",
    "vote": "ensemble.workflows.vote",
    "fit_weights": "ensemble.tasks.classification.weighting",
    "cross_validate": "ensemble.tasks.classification.estimate",
    # the types they take and return
    "Inputs": "ensemble.workflows.inputs",
    "Split": "ensemble.data.splits",
    "Logits": "ensemble.core.outputs",
    "Weights": "ensemble.tasks.classification.weights",
    "Report": "ensemble.tasks.classification.render",
    "EnsembleError": "ensemble.core.errors",
    # the Trainer callbacks a training script adds
    "TopKAveragingCallback": "ensemble.averaging.callbacks",
    "KeepBestCheckpointsCallback": "ensemble.averaging.callbacks",
}

__all__ = sorted(_LAZY) + ["__version__"]


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'ensemble' has no attribute {name!r}; the top level holds the workflows and "
                         f"their types ({', '.join(sorted(_LAZY))}): import the rest from its subpackage")


def __dir__():
    return __all__
