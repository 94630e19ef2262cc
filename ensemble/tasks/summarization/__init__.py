"""Summarization (issue 36): generation members' candidates (the generation forward's, cached),
pooled per row and combined by minimum-Bayes-risk selection (:mod:`.mbr`) under member weights
fitted and estimated over rows (:mod:`.estimate`), scored by ROUGE as competitions score it,
Korean morphemes included (:mod:`.rouge`); the submission (``fname,summary``) and the report.

:data:`SUMMARIZATION` (:mod:`.task`) is registered in :data:`~ensemble.tasks.TASKS`: ``ensemble
predict``, ``vote`` and ``report`` read ``*ForConditionalGeneration`` / ``*ForCausalLM`` members
whose data has a text column (the dialogue) and one or more reference columns. A notebook also calls
:func:`~ensemble.tasks.summarization.vote.mbr_summaries`,
:func:`~ensemble.tasks.summarization.vote.fit_summaries` and
:func:`~ensemble.tasks.summarization.vote.estimate_summaries` on the outputs of
:func:`~ensemble.workflows.predict.predict_forward` (``"generation"``).
"""

from ensemble.tasks.summarization import report, vote
from ensemble.tasks.summarization.estimate import SummaryFit
from ensemble.tasks.summarization.task import SUMMARIZATION, Summarization


SUMMARIZATION.bind(
    check_options=lambda task, options, kind: vote.check_options(task, options, kind=kind),
    vote_settings=lambda task, options, **where: vote.vote_settings(task, options, **where),
    vote=vote.vote,
    report=report.report,
    load_weights=lambda task, path: SummaryFit.load(path),
    owns_weights=lambda task, weights: isinstance(weights, SummaryFit),
)

__all__ = ["SUMMARIZATION", "Summarization"]
