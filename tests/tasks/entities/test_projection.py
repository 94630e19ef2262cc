"""Token probabilities onto characters (the inference layer's projection, then the task's shift
of B- to I- inside tokens) and onto words, against the tokenizer's own maps (``char_to_token``,
``word_to_tokens``), and decoding back to the gold spans of KLUE-NER."""

from __future__ import annotations

import numpy as np
import pytest

from ensemble.core.errors import EnsembleError
from ensemble.inference.forwards import continue_inside_tokens, inside_columns, project_onto_characters
from ensemble.tasks.entities.projection import decode, o_thresholds
from ensemble.tasks.entities.spans import tags_from_spans

from .conftest import TAGS


def project_chars(probs, offsets, n, tags):
    """One text in one window through the inference layer's projection and its shift of B- to I-
    on a token's later characters: what the token forward caches of one member."""
    spans, text_of = [np.asarray(offsets)], np.array([0])
    values, row_offsets = project_onto_characters([probs], spans, text_of, [n], len(tags))
    return continue_inside_tokens(values, row_offsets, spans, text_of, tags)


def _token_probs(enc, rng, K):
    return rng.dirichlet(np.ones(K), size=len(enc["input_ids"]))


@pytest.mark.parametrize("name", ["chars", "pieces"])
def test_each_character_takes_the_token_that_covers_it(tokenizers, klue, name):
    """The reference is the tokenizer's own ``char_to_token``: a character takes its token's
    probabilities, with each B- share moved to its I- tag unless it is the token's first."""
    tok = tokenizers[name]
    rng = np.random.default_rng(0)
    inside = inside_columns(TAGS)
    multi = 0
    for text in klue["text"][:40]:
        enc = tok(text, return_offsets_mapping=True)
        probs = _token_probs(enc, rng, len(TAGS))
        got = project_chars(probs, enc["offset_mapping"], len(text), TAGS)
        for i in range(len(text)):
            t = enc.char_to_token(i)
            if t is None:
                assert np.isnan(got[i]).all() and text[i].isspace()
                continue
            expect = probs[t].copy()
            if enc["offset_mapping"][t][0] != i:
                multi += 1
                expect = np.bincount(inside, weights=probs[t], minlength=len(TAGS))
            np.testing.assert_allclose(got[i], expect, rtol=1e-6)  # the cache keeps float32
    assert (multi > 0) == (name == "pieces")  # the pieces tokenizer has tokens of several characters


@pytest.mark.parametrize("name", ["chars", "pieces"])
def test_gold_tags_on_tokens_decode_back_to_the_gold_spans(tokenizers, klue, name):
    """Each token given its first character's gold tag, one-hot, projected and decoded: the
    entities come back, spaces inside them bridged and none at their edges (the character
    tokenizer: every sentence; pieces: every entity whose edges are token edges)."""
    tok = tokenizers[name]
    index = {t: j for j, t in enumerate(TAGS)}
    exact = checked = 0
    for row in klue.itertuples():
        enc = tok(row.text, return_offsets_mapping=True)
        gold = tags_from_spans([tuple(e) for e in row.entities], len(row.text))
        probs = np.zeros((len(enc["input_ids"]), len(TAGS)))
        for t, (a, b) in enumerate(enc["offset_mapping"]):
            probs[t, index[gold[a]] if b > a else 0] = 1.0
        got = decode(project_chars(probs, enc["offset_mapping"], len(row.text), TAGS), TAGS, row.text)
        want = [tuple(e) for e in row.entities]
        edges = {a for a, b in enc["offset_mapping"] if b > a} | {b for a, b in enc["offset_mapping"] if b > a}
        aligned = [e for e in want if e[0] in edges and e[1] in edges]
        if name == "chars":
            assert got == want, row.id
        else:
            assert set(aligned) <= set(got), row.id
        exact += got == want
        checked += 1
    assert checked == 300 and (exact == 300 if name == "chars" else exact > 150)


def test_a_b_tag_without_its_inside_tag_is_refused():
    with pytest.raises(EnsembleError, match=r"tag 'B-PS' has no 'I-PS'"):
        inside_columns(["O", "B-PS", "B-LC", "I-LC"])


def test_bioes_and_bilou_single_tags_continue_inside_their_token():
    """S-X (BIOES) and U-X (BILOU) on a token's later characters move to I-X, as B-X does; E-, L-
    and tags of no scheme (POS tags) stay."""
    assert inside_columns(["O", "B-A", "I-A", "E-A", "S-A"]).tolist() == [0, 2, 2, 3, 2]
    assert inside_columns(["O", "U-A", "L-A", "I-A", "B-A"]).tolist() == [0, 3, 2, 3, 3]
    assert inside_columns(["NOUN", "VERB"]).tolist() == [0, 1]
    probs = np.array([[0.1, 0.5, 0.1, 0.1, 0.2]])  # one token over three characters
    got = project_chars(probs, [(0, 3)], 3, ["O", "B-A", "I-A", "E-A", "S-A"])
    np.testing.assert_allclose(got[0], probs[0], rtol=1e-6)
    np.testing.assert_allclose(got[1:], [[0.1, 0, 0.8, 0.1, 0]] * 2, rtol=1e-6)


def test_o_thresholds_let_an_entity_tag_win_below_its_type_limit():
    """Per type: a unit whose best entity tag's type has a threshold takes that tag while P(O) is
    under it; a type without one is plain argmax; uncovered units stay uncovered."""
    tags = ["O", "B-A", "I-A", "B-B", "I-B"]
    probs = np.array([[0.6, 0.3, 0.0, 0.1, 0.0],   # A under O: A with a limit above 0.6
                      [0.6, 0.0, 0.3, 0.0, 0.1],
                      [0.9, 0.0, 0.0, 0.1, 0.0],   # B under O
                      [np.nan] * 5,
                      [0.2, 0.0, 0.0, 0.8, 0.0]])  # B over O: B either way
    assert decode(probs, tags) == [(4, 5, "B")]
    limits = o_thresholds(tags, {"A": 0.7})
    np.testing.assert_array_equal(np.isnan(limits), [True, False, False, True, True])
    assert decode(probs, tags, thresholds=limits) == [(0, 2, "A"), (4, 5, "B")]
    assert decode(probs, tags, thresholds=o_thresholds(tags, 0.95)) == [(0, 2, "A"), (2, 3, "B"), (4, 5, "B")]
    assert decode(probs, tags, thresholds=o_thresholds(tags, 0.6)) == [(4, 5, "B")]  # strictly under
    # a low threshold adds nothing and drops nothing that beats O (the last row's B stays)
    assert decode(probs, tags, thresholds=o_thresholds(tags, 0.1)) == [(4, 5, "B")]
    np.testing.assert_array_equal(o_thresholds(tags, np.float32(0.5))[1:], [0.5] * 4)
    assert o_thresholds(tags, None) is None
    with pytest.raises(EnsembleError, match=r"threshold for type 'C', which no tag has; the types are A, B"):
        o_thresholds(tags, {"C": 0.5})
    for bad in (0, 1.5, "0.5", True):
        with pytest.raises(EnsembleError, match=r"the O threshold of type A must be a number in \(0, 1\]"):
            o_thresholds(tags, {"A": bad})
