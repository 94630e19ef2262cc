"""Named entities (issue 35), its first layer: tag schemes, spans and their decoding, entity- and
character-level scores, and the data of character-tagged corpora (KLUE-NER).

The task itself (token-classification members, their probabilities projected onto characters
through the tokenizer's offsets, the vote, the report) is not registered in
:data:`~ensemble.tasks.TASKS` yet; these pieces are what it will decode and score with.
"""
