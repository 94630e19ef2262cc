"""Named entities (issue 35), its first layer: tag schemes, spans and their decoding, entity- and
character-level scores, the data of character-tagged corpora (KLUE-NER) and of data files, and
what the task adds to the inference layer's per-character probabilities (B- only at a token's
start), its word path, and members' tags aligned by name.

The task itself (token-classification members run and cached, the vote, the report) is not
registered in :data:`~ensemble.tasks.TASKS` yet; these pieces are what it will align, decode and
score with.
"""
