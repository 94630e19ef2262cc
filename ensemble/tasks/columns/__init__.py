"""The column tasks: regression and multi-label classification, whose members output one column
per target or label (read as they are, never through a softmax), aligned by target or label name.

:data:`REGRESSION` (:mod:`.regression`) and :data:`MULTI_LABEL` (:mod:`.multilabel`) share
:mod:`.base` (the truth as an (n, T) array, metrics from per-row statistics), their fits
(:mod:`.fitting`: weights per target, stacks, thresholds), the estimate (:mod:`.estimate`), their
part of the vote (:mod:`.vote`) and of the report (:mod:`.report`). They are the worked example
of a task package (docs/architecture.md, "A new task").
"""

from ensemble.tasks.columns import report, vote
from ensemble.tasks.columns.fitting import ValueWeights
from ensemble.tasks.columns.multilabel import MULTI_LABEL, MultiLabel
from ensemble.tasks.columns.regression import REGRESSION, Regression

for _task in (REGRESSION, MULTI_LABEL):
    _task.bind(
        check_options=lambda task, options, kind: vote.check_options(task, options, kind=kind),
        vote_settings=lambda task, options, *, kind, **where: vote.vote_settings(task, options, **where),
        vote=lambda task, job: vote.vote(job),
        report=lambda task, job: report.report(job),
        load_weights=lambda task, path: ValueWeights.load(path),
        owns_weights=lambda task, weights: isinstance(weights, ValueWeights),
    )

__all__ = ["REGRESSION", "MULTI_LABEL", "Regression", "MultiLabel"]
