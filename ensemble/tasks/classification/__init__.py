"""Single-label classification: class logits (n, C) aligned by class name, combined over their
probabilities, weighted (uniform, acc, optimize, select, stack, best<K>), temperature-scaled and
class-prior adjusted, estimated honestly, reported and submitted as one label column.

The task object is :data:`CLASSIFICATION` (:mod:`.task`); its fits (:mod:`.weighting`,
:mod:`.weights`, :mod:`.offsets`), procedure and estimates (:mod:`.procedure`, :mod:`.estimate`,
:mod:`.offset_choice`), holdout and fold-mean scoring (:mod:`.holdout`, :mod:`.foldmean`), its
part of the vote (:mod:`.vote`) and of the report (:mod:`.report`, :mod:`.render`) live beside it.
"""

from ensemble.tasks.classification import report, vote
from ensemble.tasks.classification.task import CLASSIFICATION, Classification
from ensemble.tasks.classification.weights import Weights

CLASSIFICATION.bind(
    check_options=lambda task, options, kind: vote.check_options(options, kind=kind),
    vote_settings=lambda task, options, *, source, columns, **_: vote.vote_settings(options, source=source,
                                                                                     columns=columns),
    vote=lambda task, job: vote.vote(job),
    report=lambda task, job: report.report(job),
    load_weights=lambda task, path: Weights.load(path),
    owns_weights=lambda task, weights: isinstance(weights, Weights),
)

__all__ = ["CLASSIFICATION", "Classification"]
