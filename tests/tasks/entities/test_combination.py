"""Members' per-character probabilities aligned by id and by tag name, averaged where they cover
a character, decoded per row; members run over other rows or texts refused."""

from __future__ import annotations

import numpy as np
import pytest

from ensemble.core.errors import EnsembleError
from ensemble.core.outputs import Ragged
from ensemble.tasks.entities.combination import align_units, decode_rows, mean_units
from ensemble.tasks.entities.projection import decode

TAGS = ("O", "B-A", "I-A", "B-B", "I-B")


def _member(name, rows, tags=TAGS, ids=None):
    ids = np.array(ids or [f"r{i}" for i in range(len(rows))])
    return Ragged.from_rows(ids, [np.asarray(r, dtype=np.float32) for r in rows], tags, name)


def _random_rows(rng, lengths, k=len(TAGS)):
    rows = [rng.dirichlet(np.ones(k), size=n) for n in lengths]
    for r in rows:
        r[rng.random(len(r)) < 0.2] = np.nan  # characters no token covers
    return rows


def test_rows_and_tags_aligned_by_id_and_name():
    rng = np.random.default_rng(0)
    rows = _random_rows(rng, [5, 0, 7])
    a = _member("a", rows)
    order = [4, 3, 0, 2, 1]  # b's tags in another order, its rows too
    perm = [TAGS[j] for j in order]
    b = _member("b", [rows[i][:, order] for i in (2, 0, 1)], perm, ids=["r2", "r0", "r1"])
    al = align_units([a, b])
    assert al.tags == ("O", "B-A", "I-A", "B-B", "I-B") and al.members == ("a", "b")
    assert al.ids.tolist() == ["r0", "r1", "r2"] and al.offsets.tolist() == [0, 5, 5, 12]
    np.testing.assert_allclose(al.values[1], al.values[0], rtol=1e-6)  # the same numbers, found by name


def test_bioes_member_merges_into_bio():
    rows = [np.array([[0.1, 0.2, 0.3, 0.4, 0.0]])]
    al = align_units([_member("bio", [np.full((1, 3), 1 / 3)], ("O", "I-A", "B-A")),
                      _member("bioes", rows, ("O", "B-A", "I-A", "E-A", "S-A"))])
    assert al.tags == ("O", "B-A", "I-A")
    np.testing.assert_allclose(al.values[1], [[0.1, 0.2, 0.7]], rtol=1e-6)  # S->B, E->I


@pytest.mark.parametrize("weights", [None, [1.0, 3.0, 0.5], [0.0, 1.0, 1.0]])
def test_mean_over_the_members_covering_each_character(weights):
    rng = np.random.default_rng(1)
    values = [np.concatenate(_random_rows(rng, [40])) for _ in range(3)]
    got = mean_units(values, weights)
    w = np.ones(3) if weights is None else np.asarray(weights)
    for i in range(40):  # by hand, unit by unit
        pairs = [(wm, v[i]) for wm, v in zip(w, values) if wm > 0 and not np.isnan(v[i]).any()]
        if not pairs:
            assert np.isnan(got[i]).all()
            continue
        np.testing.assert_allclose(got[i], sum(wm * r for wm, r in pairs) / sum(wm for wm, _ in pairs))


@pytest.mark.parametrize("weights", [[1.0], [1.0, -1.0], [0.0, 0.0], [np.nan, 1.0]])
def test_bad_weights_are_refused(weights):
    with pytest.raises(EnsembleError, match=r"weights must be 2 finite numbers >= 0, not all zero"):
        mean_units([np.ones((2, 5)), np.ones((2, 5))], weights)


def test_decode_rows_is_decode_row_by_row():
    rng = np.random.default_rng(2)
    texts = ["ab cd", "", "efg h"]
    rows = _random_rows(rng, [len(t) for t in texts])
    m = _member("m", rows)
    al = align_units([m])
    got = decode_rows(al.values[0], al.offsets, al.tags, texts)
    assert got == [decode(r, TAGS, t) for r, t in zip(rows, texts)]


def test_members_over_other_rows_or_texts_are_refused():
    rng = np.random.default_rng(3)
    rows = _random_rows(rng, [3, 4])
    a = _member("a", rows)
    with pytest.raises(EnsembleError, match=r"^b: its outputs lack row 'r1' of a's; run every member over the same split"):
        align_units([a, _member("b", rows[:1])])
    with pytest.raises(EnsembleError, match=r"^b: its outputs have an extra row 'r2' of a's"):
        align_units([a, _member("b", rows + rows[:1])])
    with pytest.raises(EnsembleError, match=r"^b: row 'r1' has 5 units, a's has 4: the members were run over different"):
        align_units([a, _member("b", [rows[0], np.vstack([rows[1], rows[1][:1]])])])
    with pytest.raises(EnsembleError, match=r"two members are called 'a'"):
        align_units([a, a])
    with pytest.raises(EnsembleError, match=r"b tags the entity types A, C, a tags A, B"):
        align_units([a, _member("b", rows, ("O", "B-A", "I-A", "B-C", "I-C"))])
