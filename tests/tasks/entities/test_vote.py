"""The entities ensemble over real token classifiers trained with ``Trainer`` on the KLUE-NER
slice, two tokenizers: one member equals its own forward pass mapped through its offsets; a member
with its tags in another order votes as the same numbers; two tokenizers average on characters;
the members' outputs are cached; the estimates are entity F1 over rows."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file
from seqeval.metrics import f1_score

from ensemble.core.errors import EnsembleError
from ensemble.data.splits import load_split
from ensemble.inference.session import ModelSession
from ensemble.tasks.entities.projection import decode
from ensemble.tasks.entities.spans import entity_scores, tags_from_spans
from ensemble.tasks.entities.gold import read_entities
from ensemble.tasks.entities.submission import entity_submission
from ensemble.tasks.entities.vote import entity_probabilities, entity_spans, estimate_entities, fit_entities
from ensemble.workflows.predict import predict_forward


def _predict(folder, split, cache, **kw):
    return predict_forward(folder, split, "tokens", batch_size=8, device="cpu", progress=False, cache=cache, **kw)


def _by_hand(folder, texts):
    """The model's own forward pass, text by text, mapped onto characters through the tokenizer's
    offsets: a token's probabilities on its characters, each B- share on its I- tag after the
    first; NaN where no token is."""
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    model = AutoModelForTokenClassification.from_pretrained(folder).eval()
    tok = AutoTokenizer.from_pretrained(folder)
    tags = [model.config.id2label[i] for i in range(model.config.num_labels)]
    inside = [tags.index("I-" + t[2:]) if t.startswith("B-") else j for j, t in enumerate(tags)]
    out = []
    for text in texts:
        enc = tok(text, return_offsets_mapping=True)
        with torch.no_grad():
            p = torch.softmax(model(input_ids=torch.tensor([enc["input_ids"]])).logits[0], -1).numpy()
        chars = np.full((len(text), len(tags)), np.nan)
        for j, (a, b) in enumerate(enc["offset_mapping"]):
            if b > a:
                chars[a] = p[j]
                chars[a + 1:b] = np.bincount(inside, weights=p[j], minlength=len(tags))
        out.append(chars)
    return out, tags


@pytest.fixture(scope="module")
def outputs(taggers, tmp_path_factory):
    cache = tmp_path_factory.mktemp("cache")
    split = load_split(taggers.valid)
    return {name: _predict(folder, split, cache, name=name) for name, folder in taggers.members.items()}, split, cache


def test_one_member_is_its_own_forward_pass_through_its_offsets(taggers, outputs):
    outs, split, _ = outputs
    for name in ("chars", "pieces"):
        hand, tags = _by_hand(taggers.members[name], taggers.texts)
        got = entity_spans([outs[name]], taggers.texts)
        assert got == [decode(h, tags, t) for h, t in zip(hand, taggers.texts)]
        for i, h in enumerate(hand):
            np.testing.assert_allclose(outs[name].row(i), h, atol=1e-5)  # NaN where h is
    assert sum(map(len, got)) > 0  # the members found some entities


def test_a_member_with_its_tags_in_another_order_votes_the_same_numbers(taggers, outputs, tmp_path):
    """pieces with its head's rows permuted and id2label permuted with them: the same model. It
    aligns by name, so with pieces it votes exactly what pieces votes alone."""
    import shutil

    outs, split, cache = outputs
    src = taggers.members["pieces"]
    copy = tmp_path / "pieces-permuted"
    shutil.copytree(src, copy)
    config = json.loads((copy / "config.json").read_text())
    K = len(config["id2label"])
    perm = np.random.default_rng(0).permutation(K)
    config["id2label"] = {str(i): config["id2label"][str(int(j))] for i, j in enumerate(perm)}
    config["label2id"] = {t: i for i, t in config["id2label"].items()}
    (copy / "config.json").write_text(json.dumps(config))
    weights = load_file(copy / "model.safetensors")
    for k in ("classifier.weight", "classifier.bias"):
        weights[k] = weights[k][torch.as_tensor(perm)].contiguous()
    save_file(weights, copy / "model.safetensors", metadata={"format": "pt"})
    permuted = _predict(copy, split, cache, name="permuted")
    assert permuted.labels != outs["pieces"].labels
    assert entity_spans([outs["pieces"], permuted], taggers.texts) == entity_spans([outs["pieces"]], taggers.texts)
    # and the member trained with its tags in another order joins the ensemble by name
    trio = entity_spans([outs["chars"], outs["pieces"], outs["pieces-reordered"]], taggers.texts)
    assert len(trio) == len(taggers.texts)


def test_two_tokenizers_average_on_characters(taggers, outputs):
    outs, _, _ = outputs
    hands = [_by_hand(taggers.members[n], taggers.texts) for n in ("chars", "pieces")]
    (a, tags), (b, _) = hands
    expected = []
    for x, y, text in zip(a, b, taggers.texts):
        both = np.where(np.isnan(x), y, np.where(np.isnan(y), x, (x + y) / 2))
        expected.append(decode(both, tags, text))
    assert entity_spans([outs["chars"], outs["pieces"]], taggers.texts) == expected
    w = [1.0, 3.0]
    weighted = [decode(np.where(np.isnan(x), y, np.where(np.isnan(y), x, (x + 3 * y) / 4)), tags, t)
                for x, y, t in zip(a, b, taggers.texts)]
    assert entity_spans([outs["chars"], outs["pieces"]], taggers.texts, weights=w) == weighted


def test_the_submission_and_its_probabilities_are_what_was_voted(taggers, outputs):
    """The probabilities table holds the characters' mean by hand (rows in the split's order, a
    row per character); the submission's JSON reads back as the spans voted."""
    outs, split, _ = outputs
    (a, tags), (b, _) = [_by_hand(taggers.members[n], taggers.texts) for n in ("chars", "pieces")]
    table = entity_probabilities([outs["chars"], outs["pieces"]], [1.0, 3.0])
    assert table["id"].tolist() == [i for i, t in zip(split.ids, taggers.texts) for _ in t]
    hand = np.concatenate([np.where(np.isnan(x), y, np.where(np.isnan(y), x, (x + 3 * y) / 4)) for x, y in zip(a, b)])
    np.testing.assert_allclose(table[list(tags)].to_numpy(), hand, atol=1e-5)
    spans = entity_spans([outs["chars"], outs["pieces"]], taggers.texts, [1.0, 3.0])
    frame = entity_submission(split.ids, spans, taggers.texts)
    assert read_entities(taggers.texts, frame["entities"], path="submission") == [sorted(s) for s in spans]


def test_a_second_run_reads_the_cache_and_loads_no_model(taggers, outputs, monkeypatch):
    outs, split, cache = outputs

    def no_model(self):
        raise AssertionError("the model was loaded")

    monkeypatch.setattr(ModelSession, "model", property(no_model))
    again = _predict(taggers.members["chars"], split, cache, name="chars")
    assert again.meta["cached"] is True
    np.testing.assert_array_equal(again.values, outs["chars"].values)


def test_entity_f1_and_the_estimates(taggers, outputs):
    outs, _, _ = outputs
    members = [outs["chars"], outs["pieces"]]
    spans = entity_spans(members, taggers.texts)
    n = [len(t) for t in taggers.texts]
    f = entity_scores(taggers.gold, spans)["f"]
    assert f == pytest.approx(f1_score([tags_from_spans(g, k) for g, k in zip(taggers.gold, n)],
                                       [tags_from_spans(s, k) for s, k in zip(spans, n)]))
    est = estimate_entities(members, taggers.texts, taggers.gold, folds=5, n_resamples=500)
    assert est["uniform"].f == pytest.approx(f)  # nothing fitted: cross-validation changes nothing
    for e in est.values():
        assert e.interval[0] <= e.f <= e.interval[1] and e.gain_interval[0] <= e.gain <= e.gain_interval[1]
    singles = [entity_scores(taggers.gold, entity_spans([m], taggers.texts))["f"] for m in members]
    np.testing.assert_allclose(fit_entities(members, taggers.texts, taggers.gold, "f1").weights, singles)
    assert fit_entities(members, taggers.texts, taggers.gold, "best").weights.tolist() == \
        [float(singles[0] >= singles[1]), float(singles[1] > singles[0])]


def test_a_fit_is_applied_as_fitted(taggers, outputs):
    """A fit's weights and O thresholds are what entity_spans uses; a fit of other members, or
    thresholds given twice, is refused."""
    outs, _, _ = outputs
    members = [outs["chars"], outs["pieces"]]
    fit = fit_entities(members, taggers.texts, taggers.gold, "optimize", thresholds=True, metric="f5")
    assert fit.members == ("chars", "pieces") and fit.thresholds is not None
    assert entity_spans(members, taggers.texts, fit) == \
        entity_spans(members, taggers.texts, fit.weights, thresholds=fit.thresholds)
    recall = entity_scores(taggers.gold, entity_spans(members, taggers.texts, fit))["recall"]
    assert recall >= entity_scores(taggers.gold, entity_spans(members, taggers.texts, fit.weights))["recall"]
    with pytest.raises(EnsembleError, match=r"the fit is of members chars, pieces, the outputs are of pieces, chars"):
        entity_spans(members[::-1], taggers.texts, fit)
    with pytest.raises(EnsembleError, match=r"thresholds are given twice"):
        entity_spans(members, taggers.texts, fit, thresholds=0.9)


def test_texts_other_than_the_members_ran_over_are_refused(taggers, outputs):
    outs, _, _ = outputs
    texts = list(taggers.texts)
    texts[3] = texts[3] + "!"
    with pytest.raises(EnsembleError, match=r"^row 3: its text has \d+ characters, the outputs \d+: the texts are not"):
        entity_spans([outs["chars"]], texts)
    with pytest.raises(EnsembleError, match=r"got 59 texts for 60 rows"):
        entity_spans([outs["chars"]], texts[1:])


# --------------------------------------------------------------------------- pre-split words


def _words_by_hand(folder, rows):
    """The model's own pass over each row's words (is_split_into_words), each word its first
    sub-token's probabilities through word_ids; NaN for a word with no token."""
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    model = AutoModelForTokenClassification.from_pretrained(folder).eval()
    tok = AutoTokenizer.from_pretrained(folder)
    tags = [model.config.id2label[i] for i in range(model.config.num_labels)]
    out = []
    for words in rows:
        enc = tok(words, is_split_into_words=True)
        with torch.no_grad():
            p = torch.softmax(model(input_ids=torch.tensor([enc["input_ids"]])).logits[0], -1).numpy()
        per_word = np.full((len(words), len(tags)), np.nan)
        for j, w in enumerate(enc.word_ids()):
            if w is not None and np.isnan(per_word[w]).all():
                per_word[w] = p[j]
        out.append(per_word)
    return out, tags


@pytest.fixture(scope="module")
def words(taggers, tmp_path_factory):
    """The valid rows as pre-split words (the CoNLL and PII shape), each word tagged with its first
    character's tag; the members' per-word outputs (first sub-token)."""
    import pandas as pd

    from ensemble.tasks.entities.spans import normalise_tags, spans_from_tags

    root = tmp_path_factory.mktemp("words")
    rows, gold = [], []
    for text, spans in zip(taggers.texts, taggers.gold):
        chars, starts, at = tags_from_spans(spans, len(text)), [], 0
        row = text.split()
        for w in row:
            at = text.index(w, at)
            starts.append(at)
            at += len(w)
        rows.append(row)
        gold.append(spans_from_tags(normalise_tags([chars[s] for s in starts])))
    path = root / "valid.jsonl"
    pd.DataFrame({"id": [f"w{i}" for i in range(len(rows))], "tokens": rows}).to_json(
        path, orient="records", lines=True, force_ascii=False)
    split = load_split(path, text="tokens")
    outs = {name: _predict(folder, split, root / "cache", name=name, words="first")
            for name, folder in taggers.members.items()}
    return outs, split, rows, gold


def test_words_average_across_tokenizers_through_word_ids(taggers, words):
    """Two tokenizers on the same words: each member is its own pass through word_ids, their mean
    decoded per word; the member with its tags in another order votes the same numbers."""
    outs, _, rows, _ = words
    (a, tags), (b, _) = [_words_by_hand(taggers.members[n], rows) for n in ("chars", "pieces")]
    for i in range(len(rows)):
        np.testing.assert_allclose(outs["chars"].row(i), a[i], atol=1e-5)
    expected = [decode(np.where(np.isnan(x), y, np.where(np.isnan(y), x, (x + y) / 2)), tags, r)
                for x, y, r in zip(a, b, rows)]
    assert entity_spans([outs["chars"], outs["pieces"]], rows) == expected
    _, reordered = outs["pieces-reordered"], entity_probabilities([outs["pieces-reordered"]])
    c, _ = _words_by_hand(taggers.members["pieces-reordered"], rows)
    np.testing.assert_allclose(reordered[list(tags)].to_numpy(),
                               np.concatenate(c)[:, [list(outs["pieces-reordered"].labels).index(t) for t in tags]],
                               atol=1e-5)


def test_words_are_scored_fitted_and_submitted_per_word(taggers, words):
    """Entity F1 on words equals seqeval's on the word tags; F5 fitting and estimates run over
    rows of words; the rows format lists each word in an entity with its tag."""
    outs, split, rows, gold = words
    members = [outs["chars"], outs["pieces"]]
    spans = entity_spans(members, rows)
    n = [len(r) for r in rows]
    assert entity_scores(gold, spans)["f"] == pytest.approx(f1_score(
        [tags_from_spans(g, k) for g, k in zip(gold, n)], [tags_from_spans(s, k) for s, k in zip(spans, n)]))
    fit = fit_entities(members, rows, gold, "optimize", thresholds=True, metric="f5")
    plain = estimate_entities(members, rows, gold, methods=("uniform",), metric="f5", folds=3, n_resamples=200)
    assert plain["uniform"].f == pytest.approx(entity_scores(gold, spans, beta=5)["f"])  # nothing fitted
    est = estimate_entities(members, rows, gold, methods=("uniform", "optimize"), thresholds=True, metric="f5",
                            folds=3, n_resamples=200)
    assert all(e.interval[0] <= e.f <= e.interval[1] for e in est.values())
    fitted = entity_spans(members, rows, fit)
    frame = entity_submission(split.ids, fitted, rows, format="rows")
    expect = [(i, k, t) for i, s, r in zip(split.ids, fitted, rows) for k, t in enumerate(tags_from_spans(s, len(r)))
              if t != "O"]
    assert list(zip(frame["document"], frame["token"], frame["label"])) == expect and len(expect) > 0
    with pytest.raises(EnsembleError, match=r"row 2: its text has \d+ words, the outputs \d+"):
        entity_spans(members, [*rows[:2], rows[2][1:], *rows[3:]])
