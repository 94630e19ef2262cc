"""Members' tags in one order: each member's ``id2label`` read as BIO (BIOES and BILOU columns
merged into the BIO tag they stand for), members with their tags in another order aligned by
name, and members that disagree on the entity types refused, naming them.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from ensemble.core.combination import generic_names
from ensemble.core.errors import EnsembleError
from ensemble.tasks.entities.spans import entity_types, normalise_tags

__all__ = ["TagAlignment", "align_tags"]


class TagAlignment:
    """The common tags (``O``, then ``B-``/``I-`` of each type, types sorted) and, per member, the
    common column each of its own columns adds to."""

    def __init__(self, tags: Sequence[str], columns: Mapping[str, np.ndarray]):
        self.tags = tuple(tags)
        self.columns = dict(columns)

    def to_common(self, member: str, values: np.ndarray) -> np.ndarray:
        """One member's per-unit probabilities (n x its K tags) in the common tags (n x K): its
        columns moved (and merged, for BIOES) to theirs."""
        values = np.asarray(values, dtype=np.float64)
        cols = self.columns[member]
        if values.shape[-1] != len(cols):
            raise EnsembleError(f"{member}: {values.shape[-1]} tag columns, its id2label names {len(cols)}")
        out = np.zeros((len(values), len(self.tags)))
        np.add.at(out.T, cols, values.T)
        return out


def align_tags(member_tags: Mapping[str, Sequence[str]]) -> TagAlignment:
    """The common tags of the members (``{name: its id2label tags in index order}``).

    A member whose tags are transformers' defaults (``LABEL_0``...) is refused, asking for its tag
    names; so is a tag in no known scheme; members whose entity types differ are refused, naming
    each side's types.
    """
    if not member_tags:
        raise EnsembleError("no members to align; give at least one")
    types = {}
    for name, tags in member_tags.items():
        if generic_names(tags):
            raise EnsembleError(f"{name}: its tags are transformers' defaults ({', '.join(map(str, tags[:3]))}...); set "
                                "id2label (and label2id) in its config.json to the tag names in its training order "
                                "(O, B-PS, I-PS, ...)")
        types[name] = entity_types(normalise_tags(tags, where=f"{name}: id2label"))
    first = next(iter(types))
    for name, kinds in types.items():
        if kinds != types[first]:
            raise EnsembleError(f"{name} tags the entity types {', '.join(kinds) or 'none'}, {first} tags "
                                f"{', '.join(types[first]) or 'none'}: members of one ensemble tag the same types")
    common = ["O"] + [f"{p}-{k}" for k in types[first] for p in "BI"]
    index = {t: j for j, t in enumerate(common)}
    columns = {name: np.array([index[t] for t in normalise_tags(tags)]) for name, tags in member_tags.items()}
    return TagAlignment(common, columns)
