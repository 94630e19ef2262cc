"""Summarization (issue 36), being built: ROUGE as competitions score it, Korean morphemes
included (:mod:`.rouge`). Not registered in :data:`~ensemble.tasks.TASKS` yet: no CLI command,
project file or report reads it.
"""
