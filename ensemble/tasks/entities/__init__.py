"""Named entities (issue 35): tag schemes, spans and their decoding, entity- and character-level
scores, the data of character-tagged corpora (KLUE-NER) and of data files, members' tags aligned
by name, their per-character probabilities (the token forward's, cached) averaged and decoded,
weight rules and O thresholds fitted on rows and estimated over rows, the submission and the
report's tables.

A notebook calls :func:`~ensemble.tasks.entities.vote.entity_spans`,
:func:`~ensemble.tasks.entities.vote.entity_probabilities`,
:func:`~ensemble.tasks.entities.vote.fit_entities` and
:func:`~ensemble.tasks.entities.vote.estimate_entities` on the outputs of
:func:`~ensemble.workflows.predict.predict_forward` (``"tokens"``). The task is not registered in
:data:`~ensemble.tasks.TASKS` yet: no CLI command, project file or report reads it.
"""
