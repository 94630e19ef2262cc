"""Named entities (issue 35), its first layer: tag schemes, spans and their decoding, entity- and
character-level scores, the data of character-tagged corpora (KLUE-NER), and token
probabilities projected onto characters or words.

The task itself (token-classification members run and cached, the vote, the report) is not
registered in :data:`~ensemble.tasks.TASKS` yet; these pieces are what it will align, decode and
score with.
"""
