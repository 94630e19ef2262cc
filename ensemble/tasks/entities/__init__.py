"""Named entities (issue 35): tag schemes, spans and their decoding, entity- and character-level
scores, the data of character-tagged corpora (KLUE-NER) and of data files, members' tags aligned
by name, their per-character probabilities (the token forward's, cached) averaged and decoded,
weight rules and O thresholds fitted on rows and estimated over rows, the submission and the
report.

:data:`ENTITIES` (:mod:`.task`) is registered in :data:`~ensemble.tasks.TASKS`: ``ensemble
predict``, ``vote`` and ``report`` read token-classification members whose data has a text column
and a label column of gold spans (``[[start, end, "TYPE"], ...]``). A notebook also calls
:func:`~ensemble.tasks.entities.vote.entity_spans`,
:func:`~ensemble.tasks.entities.vote.fit_entities` and
:func:`~ensemble.tasks.entities.vote.estimate_entities` on the outputs of
:func:`~ensemble.workflows.predict.predict_forward` (``"tokens"``), with texts or lists of words.
"""

from ensemble.tasks.entities import report, vote
from ensemble.tasks.entities.fitting import Fit
from ensemble.tasks.entities.task import ENTITIES, Entities

ENTITIES.bind(
    check_options=lambda task, options, kind: vote.check_options(task, options, kind=kind),
    vote_settings=lambda task, options, **where: vote.vote_settings(task, options, **where),
    vote=vote.vote,
    report=report.report,
    load_weights=lambda task, path: Fit.load(path),
    owns_weights=lambda task, weights: isinstance(weights, Fit),
)

__all__ = ["ENTITIES", "Entities"]
