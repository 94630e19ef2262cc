"""Members' tags aligned by name: another order, another scheme, and the refusals."""

from __future__ import annotations

import numpy as np
import pytest

from ensemble.core.errors import EnsembleError
from ensemble.tasks.entities.alignment import align_tags


def test_members_with_tags_in_another_order_or_scheme_align_by_name():
    bio = ["O", "B-PS", "I-PS", "B-LC", "I-LC"]
    shuffled = ["I-LC", "B-PS", "O", "I-PS", "B-LC"]
    bioes = ["O", "B-PS", "I-PS", "E-PS", "S-PS", "B-LC", "I-LC", "E-LC", "S-LC"]
    a = align_tags({"a": bio, "b": shuffled, "c": bioes})
    assert a.tags == ("O", "B-LC", "I-LC", "B-PS", "I-PS")
    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.ones(5), size=7)
    in_bio = a.to_common("a", p)
    np.testing.assert_allclose(in_bio[:, [0, 3, 4, 1, 2]], p)  # each column where its name is
    perm = [bio.index(t) for t in shuffled]
    np.testing.assert_allclose(a.to_common("b", p[:, perm]), in_bio)
    q = rng.dirichlet(np.ones(9), size=7)
    merged = a.to_common("c", q)  # S- adds to B-, E- to I-: every row still sums to 1
    np.testing.assert_allclose(merged.sum(axis=1), 1.0)
    np.testing.assert_allclose(merged[:, a.tags.index("B-PS")], q[:, 1] + q[:, 4])
    np.testing.assert_allclose(merged[:, a.tags.index("I-LC")], q[:, 6] + q[:, 7])
    with pytest.raises(EnsembleError, match=r"^a: 4 tag columns, its id2label names 5$"):
        a.to_common("a", p[:, :4])


@pytest.mark.parametrize("members,said", [
    ({"a": ["O", "B-PS", "I-PS"], "b": ["O", "B-PS", "I-PS", "B-LC", "I-LC"]},
     "b tags the entity types LC, PS, a tags PS: members of one ensemble tag the same types"),
    ({"a": ["LABEL_0", "LABEL_1", "LABEL_2"]}, "a: its tags are transformers' defaults (LABEL_0, LABEL_1, LABEL_2...)"),
    ({"a": ["O", "PER", "LOC"]}, "a: id2label: tag 'PER' is not in a known scheme"),
])
def test_members_that_cannot_be_aligned_are_refused_naming_them(members, said):
    with pytest.raises(EnsembleError) as e:
        align_tags(members)
    assert said in str(e.value) and "\n" not in str(e.value)
