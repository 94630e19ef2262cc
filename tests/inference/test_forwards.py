"""The forwards beside sequence classification: a token classifier's per-character probabilities
against its own forward pass mapped by hand, long texts in strided windows, and generation against
``model.generate`` row by row. Tiny random models built from configs, tokenizers trained here."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ensemble.core.errors import EnsembleError
from ensemble.data.splits import load_split
from ensemble.inference.cache import OutputCache
from ensemble.inference.forwards import (
    FORWARDS,
    GenerationForward,
    TokenForward,
    as_forward,
    forward_named,
    open_model,
    project_onto_characters,
)
from ensemble.inference.models import ModelRef
from ensemble.workflows.predict import predict_forward
from ensemble.inference.session import ModelSession
from ensemble.inference.settings import InferenceSettings, library_versions, recorded_settings

from ..conftest import load_korean

TAGS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
CPU = InferenceSettings(batch_size=3, device="cpu", dtype="float32")


# --------------------------------------------------------------------------- tiny models


def _korean(n: int = 120) -> list[str]:
    (texts, _), _ = load_korean(n, 0)
    return texts


def _train_tokenizer(texts, specials, template, vocab_size=300):
    """A fast WordPiece tokenizer trained on ``texts``: small enough that words split in pieces."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    unk = specials["unk_token"]
    tk = Tokenizer(models.WordPiece(unk_token=unk))
    tk.normalizer = normalizers.NFC()
    tk.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    # every character kept: limit_alphabet breaks frequency ties in a random (Rust HashMap) order, so
    # the vocabulary, and the random models' generations, differed from one process to the next
    trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=list(specials.values()))
    tk.train_from_iterator(texts, trainer)
    # and its ids renumbered in a fixed order (the trainer numbers the alphabet in hash order)
    learned = tk.get_vocab()
    order = [*specials.values(), *sorted(t for t in learned if t not in specials.values())]
    tk.model = models.WordPiece(vocab={t: i for i, t in enumerate(order)}, unk_token=unk)
    first, last = template
    tk.post_processor = processors.TemplateProcessing(
        single=f"{first} $A {last}", special_tokens=[(first, tk.token_to_id(first)), (last, tk.token_to_id(last))])
    tk.decoder = decoders.WordPiece()
    return PreTrainedTokenizerFast(tokenizer_object=tk, **specials)


@pytest.fixture(scope="module")
def ner_dir(tmp_path_factory):
    """A random BertForTokenClassification (512 positions) and its trained fast tokenizer."""
    import torch
    from transformers import BertConfig, BertForTokenClassification

    folder = tmp_path_factory.mktemp("ner") / "bert-ner"
    tok = _train_tokenizer(_korean(), {"unk_token": "[UNK]", "pad_token": "[PAD]", "cls_token": "[CLS]",
                                       "sep_token": "[SEP]"}, ("[CLS]", "[SEP]"))
    config = BertConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=64, max_position_embeddings=512, num_labels=len(TAGS),
                        id2label=dict(enumerate(TAGS)), label2id={t: i for i, t in enumerate(TAGS)})
    torch.manual_seed(0)
    BertForTokenClassification(config).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def _split(tmp_path, texts, name="valid"):
    path = tmp_path / f"{name}.csv"
    pd.DataFrame({"id": [f"r{i}" for i in range(len(texts))], "text": texts}).to_csv(path, index=False)
    return load_split(path)


def _inside(p):
    """A token's tag probabilities on its later characters: each B- share on its I- tag."""
    return np.array([p[0], 0.0, p[1] + p[2], 0.0, p[3] + p[4]])


def _by_hand(folder, text, **window):
    """The model's own pass over ``text`` (or each of its windows), one unpadded window at a time,
    mapped onto characters through offset_mapping, a token's B- shares on its I- tags after its
    first character: (per-character sum, count)."""
    import torch
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    model = AutoModelForTokenClassification.from_pretrained(folder, attn_implementation="eager").eval()
    tok = AutoTokenizer.from_pretrained(folder)
    enc = tok(text, return_offsets_mapping=True, return_overflowing_tokens=bool(window), truncation=bool(window),
              **window)
    ids = enc["input_ids"] if window else [enc["input_ids"]]
    offs = enc["offset_mapping"] if window else [enc["offset_mapping"]]
    total, count = np.zeros((len(text), len(TAGS))), np.zeros(len(text), dtype=int)
    for w, (row, spans) in enumerate(zip(ids, offs)):
        with torch.no_grad():
            p = torch.softmax(model(input_ids=torch.tensor([row])).logits[0], -1).numpy()
        seq = enc.sequence_ids(w)
        for j, (s, e) in enumerate(spans):
            if seq[j] is not None:
                total[s:e] += [p[j]] + [_inside(p[j])] * (e - s - 1)
                count[s:e] += 1
    return total, count, len(ids)


def _mean(total, count):
    with np.errstate(invalid="ignore"):
        return total / count[:, None]


# --------------------------------------------------------------------------- tokens


def test_token_probabilities_are_the_models_own_mapped_onto_characters(ner_dir, tmp_path):
    from transformers import AutoTokenizer

    texts = _korean(130)[120:130]
    split = _split(tmp_path, texts)
    assert TAGS[1:3] == ["B-PER", "I-PER"] and TAGS[3:] == ["B-LOC", "I-LOC"]  # as _inside reads them
    out = predict_forward(ner_dir, split, "tokens", batch_size=3, device="cpu", progress=False,
                          cache=tmp_path / "cache")
    assert out.labels == tuple(TAGS) and out.ids.tolist() == split.ids.tolist()
    assert out.values.dtype == np.float32 and out.offsets.dtype == np.int64
    assert out.offsets.tolist() == [0, *np.cumsum([len(t) for t in texts])]
    for i, t in enumerate(texts):
        total, count, _ = _by_hand(ner_dir, t)
        np.testing.assert_allclose(out.row(i), _mean(total, count), atol=1e-5, rtol=0)  # NaN where count 0
        spaces = np.array([c.isspace() for c in t])
        assert np.isnan(out.row(i)[spaces]).all() and not np.isnan(out.row(i)[~spaces]).any()
    assert out.meta["windowed"] == 0 and out.meta["forward"] == "tokens" and out.meta["cached"] is False
    tok = AutoTokenizer.from_pretrained(ner_dir)
    assert any(e - s > 1 for t in texts for s, e in tok(t, return_offsets_mapping=True)["offset_mapping"])

    # cached: the same numbers (NaN rows where no token is), the model not run again
    again = predict_forward(ner_dir, split, "tokens", batch_size=3, device="cpu", progress=False,
                            cache=tmp_path / "cache")
    assert again.meta["cached"] is True and Path(again.meta["cache_path"]) == Path(out.meta["cache_path"])
    np.testing.assert_array_equal(again.values, out.values)
    np.testing.assert_array_equal(again.offsets, out.offsets)
    assert again.labels == out.labels and again.ids.tolist() == out.ids.tolist()
    # a setting that changes the windows is another entry; offsets asked for are never cached
    assert predict_forward(ner_dir, split, "tokens", device="cpu", progress=False, cache=tmp_path / "cache",
                           stride=3).meta["cached"] is False
    spans = predict_forward(ner_dir, split, "tokens", device="cpu", progress=False, cache=tmp_path / "cache",
                            return_offsets=True)
    assert spans.meta["cached"] is False and "spans" in spans.meta


def test_long_text_runs_as_strided_windows_averaged_where_they_overlap(ner_dir, tmp_path):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(ner_dir)
    texts = [t for t in _korean(200)[120:] if len(tok(t)["input_ids"]) <= 16][:6]  # fit in one window
    long = " ".join(_korean(12)[:12])  # far over 16 tokens
    texts.insert(2, long)
    split = _split(tmp_path, texts)
    ref = open_model(ner_dir, "tokens")
    short = InferenceSettings(batch_size=4, device="cpu", max_length=16)
    out = ModelSession(ref, short, forward=TokenForward(stride=4, return_offsets=True)).run(split)
    whole = ModelSession(ref, CPU, forward="tokens").run(split)  # 512 positions: every text in one pass
    assert out.meta["windowed"] == 1 and len(texts) == 7

    total, count, n_windows = _by_hand(ner_dir, long, max_length=16, stride=4)
    assert n_windows > 3 and (count > 1).any()  # windows, overlapping
    got = out.row(2)
    np.testing.assert_allclose(got, _mean(total, count), atol=1e-5, rtol=0)  # the mean where they overlap
    assert not np.isnan(got[[not c.isspace() for c in long]]).any()  # nothing cut
    # the texts that fit in a window are what one pass gives
    for i in (0, 1, 3, 4, 5, 6):
        np.testing.assert_allclose(out.row(i), whole.row(i), atol=1e-5, rtol=0)
    # their token spans, each once though windows share them
    spans = out.meta["spans"][out.meta["span_offsets"][2]:out.meta["span_offsets"][3]]
    expected = sorted({tuple(s) for s in tok(long, return_offsets_mapping=True)["offset_mapping"] if s[1] > s[0]})
    assert [tuple(s) for s in spans.tolist()] == expected


def test_project_onto_characters_means_and_nan():
    probs = [np.array([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]]), np.array([[0.0, 1.0]])]
    spans = [np.array([[0, 0], [0, 2], [1, 3]]), np.array([[1, 2]])]
    values, offsets = project_onto_characters(probs, spans, np.array([0, 0]), [4], 2)
    assert offsets.tolist() == [0, 4]
    np.testing.assert_allclose(values[:3], [[0, 1], [1 / 6, 5 / 6], [0.5, 0.5]])
    assert np.isnan(values[3]).all()


def _word_split(tmp_path, rows, name="words"):
    path = tmp_path / f"{name}.jsonl"
    pd.DataFrame({"id": [f"r{i}" for i in range(len(rows))], "tokens": rows}).to_json(
        path, orient="records", lines=True, force_ascii=False)
    return load_split(path, text="tokens")


def _words_by_hand(folder, words, max_length=None, stride=0):
    """The model's own pass over ``words`` (is_split_into_words) and the word of each token, by
    hand: the full tokenization without specials cut into windows of ``max_length - 2`` tokens
    every ``max_length - 2 - stride`` (one window when it fits), each run as [CLS] window [SEP];
    a token of several windows takes their mean. Returns (per-token probabilities, word ids)."""
    import torch
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    model = AutoModelForTokenClassification.from_pretrained(folder, attn_implementation="eager").eval()
    tok = AutoTokenizer.from_pretrained(folder)
    full = tok(words, is_split_into_words=True, add_special_tokens=False)
    ids, n = full["input_ids"], len(full["input_ids"])
    room = n if max_length is None else max_length - 2
    starts = [0] if n <= room else list(range(0, n - room + (room - stride), room - stride))
    total, count = np.zeros((n, len(TAGS))), np.zeros(n)
    for s0 in starts:
        row = [tok.cls_token_id, *ids[s0:s0 + room], tok.sep_token_id]
        with torch.no_grad():
            p = torch.softmax(model(input_ids=torch.tensor([row])).logits[0], -1).numpy()[1:-1]
        total[s0:s0 + len(p)] += p
        count[s0:s0 + len(p)] += 1
    assert (count > 0).all()
    return total / count[:, None], full.word_ids()


def _word_rows(probs, word_ids, n_words, how):
    """Each word's row from its tokens, by hand: its first token's, or (mean) O and each type's
    B+I averaged over its tokens, split between B and I as the first token splits them."""
    out = np.full((n_words, len(TAGS)), np.nan)
    for w in range(n_words):
        toks = [t for t, x in enumerate(word_ids) if x == w]
        if not toks:
            continue
        first = probs[toks[0]]
        if how == "first":
            out[w] = first
            continue
        mean = probs[toks].mean(axis=0)
        out[w, 0] = mean[0]
        for b, i in ((1, 2), (3, 4)):
            mass = mean[b] + mean[i]
            out[w, b], out[w, i] = mass * first[b] / (first[b] + first[i]), mass * first[i] / (first[b] + first[i])
    return out


@pytest.mark.parametrize("how", ["first", "mean"])
def test_words_are_a_hand_built_word_ids_alignment_of_the_models_own_pass(ner_dir, tmp_path, how):
    rows = [t.split() for t in _korean(126)[120:126]]
    rows[1] = [rows[1][0], "\n\n", *rows[1][1:], " "]  # words no token covers (PII data has them)
    split = _word_split(tmp_path, rows)
    out = predict_forward(ner_dir, split, "tokens", batch_size=3, device="cpu", progress=False,
                          cache=tmp_path / "cache", words=how)
    assert out.offsets.tolist() == [0, *np.cumsum([len(r) for r in rows])] and out.labels == tuple(TAGS)
    split_more = 0
    for i, words in enumerate(rows):
        probs, word_ids = _words_by_hand(ner_dir, words)
        want = _word_rows(probs, word_ids, len(words), how)
        np.testing.assert_allclose(out.row(i), want, atol=1e-5, rtol=0)  # NaN where no token is
        split_more += sum(word_ids.count(w) > 1 for w in range(len(words)))
    assert np.isnan(out.row(1)[[1, -1]]).all() and not np.isnan(out.row(0)).any()
    assert split_more > 0  # words of several tokens, where first and mean differ
    np.testing.assert_allclose(out.values[~np.isnan(out.values).any(axis=1)].sum(axis=1), 1.0, atol=1e-5)

    # cached under the words setting: the same numbers, the other rule another entry
    again = predict_forward(ner_dir, split, "tokens", batch_size=3, device="cpu", progress=False,
                            cache=tmp_path / "cache", words=how)
    assert again.meta["cached"] is True
    np.testing.assert_array_equal(again.values, out.values)
    other = predict_forward(ner_dir, split, "tokens", batch_size=3, device="cpu", progress=False,
                            cache=tmp_path / "cache", words="mean" if how == "first" else "first")
    assert other.meta["cached"] is False and not np.allclose(np.nan_to_num(other.values), np.nan_to_num(out.values))


@pytest.mark.parametrize("how", ["first", "mean"])
def test_long_word_lists_run_as_windows_averaged_where_they_overlap(ner_dir, tmp_path, how):
    long = " ".join(_korean(12)).split()  # far over 16 tokens
    short = [t.split() for t in _korean(200)[120:] if len(t.split()) <= 3][:4]
    rows = [short[0], long, *short[1:]]
    split = _word_split(tmp_path, rows)
    ref = open_model(ner_dir, "tokens")
    tight = InferenceSettings(batch_size=4, device="cpu", max_length=16)
    out = ModelSession(ref, tight, forward=TokenForward(stride=4, words=how)).run(split)
    whole = ModelSession(ref, CPU, forward=TokenForward(words=how)).run(split)
    assert out.meta["windowed"] == 1 and out.meta["windows"] > 6
    probs, word_ids = _words_by_hand(ner_dir, long, max_length=16, stride=4)
    np.testing.assert_allclose(out.row(1), _word_rows(probs, word_ids, len(long), how), atol=1e-5, rtol=0)
    assert not np.isnan(out.row(1)).any()  # nothing cut
    for i in (0, 2, 3, 4):  # the rows that fit: what one pass gives
        np.testing.assert_allclose(out.row(i), whole.row(i), atol=1e-5, rtol=0)


def test_word_settings_and_cells_that_are_not_word_lists_are_refused(ner_dir, tmp_path):
    for bad, match in (({"words": "max"}, r"words must be one of first, mean \(or unset, for texts\); got 'max'"),
                       ({"words": "first", "return_offsets": True}, r"return_offsets gives character spans")):
        with pytest.raises(EnsembleError, match=match):
            TokenForward(**bad)
    ref = open_model(ner_dir, "tokens")
    path = tmp_path / "words.csv"
    pd.DataFrame({"id": ["a", "b", "c"], "tokens": [["서울", "부산"], ["경찰은"], "경찰은 또"]}).to_csv(path, index=False)
    split = load_split(path, text="tokens")  # pandas writes lists as Python lists: read too
    with pytest.raises(EnsembleError, match=rf"^{path}: row 3: column 'tokens' holds '경찰은 또', not a list of "
                                            r"words; give each row its words") as e:
        ModelSession(ref, CPU, forward=TokenForward(words="first")).run(split)
    assert "\n" not in str(e.value)
    path.write_text("id,tokens\na,\"[\"\"서울\"\", \"\"부산\"\"]\"\nb,['경찰은']\n", encoding="utf-8")
    got = ModelSession(ref, CPU, forward=TokenForward(words="first")).run(load_split(path, text="tokens"))
    assert got.offsets.tolist() == [0, 2, 3]


def test_slow_tokenizer_and_too_long_stride_are_refused(ner_dir, tmp_path):
    import transformers

    split = _split(tmp_path, ["서울 부산"])
    ref = open_model(ner_dir, "tokens")
    session = ModelSession(ref, CPU, forward="tokens")
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("\n".join(json.loads((ner_dir / "tokenizer.json").read_text())["model"]["vocab"]) + "\n")
    slow = getattr(transformers, "BertTokenizerLegacy", transformers.BertTokenizer)  # slow in 5.x / 4.x
    session._tokenizer = slow(str(vocab))
    assert not session.tokenizer.is_fast
    with pytest.raises(EnsembleError, match=rf"^{ner_dir}: the tokens forward needs a fast tokenizer") as e:
        session.run(split)
    assert "\n" not in str(e.value)
    tight = ModelSession(ref, InferenceSettings(device="cpu", max_length=8), forward=TokenForward(stride=6))
    with pytest.raises(EnsembleError, match=r"stride 6 must be smaller than the 6 text tokens"):
        tight.run(split)


def test_open_model_checks_the_head_of_the_forward(ner_dir):
    with pytest.raises(EnsembleError, match=r"token classification head .*sequence-to-sequence generation or causal"):
        open_model(ner_dir, "generation")
    with pytest.raises(EnsembleError, match=r"token classification head"):
        ModelRef.open(ner_dir)  # still refused as a member of a sequence task
    assert open_model(ner_dir, "tokens").labels == tuple(TAGS)


# --------------------------------------------------------------------------- the registry and keys


def test_registry_names_and_errors():
    assert list(FORWARDS) == ["sequence", "tokens", "generation"]
    assert forward_named("tokens") is TokenForward
    assert FORWARDS["sequence"].auto_classes == ("AutoModelForSequenceClassification",)
    assert GenerationForward().auto_class({"is_encoder_decoder": True}) == "AutoModelForSeq2SeqLM"
    assert GenerationForward().auto_class({"model_type": "gpt2"}) == "AutoModelForCausalLM"
    with pytest.raises(EnsembleError, match=r"^unknown forward 'ner'; expected sequence, tokens, generation$"):
        forward_named("ner")
    with pytest.raises(EnsembleError, match=r"unknown setting 'beams' of the generation forward"):
        as_forward("generation", beams=2)
    with pytest.raises(EnsembleError, match=r"num_return_sequences 3 needs num_beams >= 3 or do_sample"):
        GenerationForward(num_beams=1, num_return_sequences=3)
    with pytest.raises(EnsembleError, match=r"stride must be an integer >= 0"):
        TokenForward(stride=-1)


def test_keys_sequence_unchanged_others_name_their_settings(ner_dir, tmp_path):
    from ..synthetic_members import cache_fake_model

    rng = np.random.default_rng(0)
    data = {"valid": tmp_path / "v.csv"}
    pd.DataFrame({"id": ["a", "b"], "text": ["x", "x x"]}).to_csv(data["valid"], index=False)
    folder = cache_fake_model(tmp_path / "seq", "seq", ["a", "b"], {}, {}, data, tmp_path / "c", rng)
    cache = OutputCache(tmp_path / "cache")
    split = load_split(data["valid"])
    ref = ModelRef.open(folder)
    plain = ModelSession(ref, CPU, cache)
    want = recorded_settings(ref, CPU, "cpu", "float32")
    assert plain.key_settings() == want and "forward" not in want
    assert plain.key(split) == ModelSession(ref, CPU, cache, forward="sequence").key(split) == OutputCache.make_key(
        {"model": ref.fingerprint(cache.file_digest), "data": split.digest, "settings": want,
         "versions": library_versions()})

    tref = open_model(ner_dir, "tokens")
    tk = ModelSession(tref, CPU, cache, forward=TokenForward(stride=8)).key_settings()
    assert tk == {**recorded_settings(tref, CPU, "cpu", "float32"), "forward": "tokens", "stride": 8,
                  "return_offsets": False, "words": None}
    keys = {ModelSession(tref, CPU, cache, forward=f).key(split)
            for f in (TokenForward(stride=8), TokenForward(stride=9), TokenForward(stride=8, return_offsets=True))}
    assert len(keys) == 3


# --------------------------------------------------------------------------- generation


@pytest.fixture(scope="module")
def gen_dirs(tmp_path_factory):
    """A random BART, a T5 and a GPT-2, tiny, sharing a trained tokenizer (<s> text </s>)."""
    import torch
    from transformers import (
        BartConfig,
        BartForConditionalGeneration,
        GPT2Config,
        GPT2LMHeadModel,
        T5Config,
        T5ForConditionalGeneration,
    )

    root = tmp_path_factory.mktemp("gen")
    tok = _train_tokenizer(_korean(), {"bos_token": "<s>", "pad_token": "<pad>", "eos_token": "</s>",
                                       "unk_token": "<unk>"}, ("<s>", "</s>"), vocab_size=200)
    ids = {k: tok.convert_tokens_to_ids(v) for k, v in (("bos", "<s>"), ("pad", "<pad>"), ("eos", "</s>"))}
    small = dict(vocab_size=len(tok), pad_token_id=ids["pad"], eos_token_id=ids["eos"])
    configs = {
        "bart": BartConfig(d_model=32, encoder_layers=2, decoder_layers=2, encoder_attention_heads=4,
                           decoder_attention_heads=4, encoder_ffn_dim=64, decoder_ffn_dim=64,
                           max_position_embeddings=64,
                           bos_token_id=ids["bos"], decoder_start_token_id=ids["eos"], forced_eos_token_id=None,
                           init_std=0.3, **small),
        "t5": T5Config(d_model=32, d_kv=8, d_ff=64, num_layers=2, num_heads=4, decoder_start_token_id=ids["pad"],
                       initializer_factor=3.0, **small),
        "gpt2": GPT2Config(n_embd=32, n_layer=2, n_head=4, n_positions=64, bos_token_id=ids["bos"],
                           initializer_range=0.3, **small),
    }
    classes = {"bart": BartForConditionalGeneration, "t5": T5ForConditionalGeneration, "gpt2": GPT2LMHeadModel}
    out = {}
    for name, config in configs.items():
        torch.manual_seed(1)
        model = classes[name](config)
        if name == "bart":  # some rows end early: the end token's score is what the mean stops at
            model.final_logits_bias[0, ids["eos"]] = 3.0
        model.save_pretrained(root / name)
        tok.save_pretrained(root / name)
        out[name] = root / name
    return out


GEN_TEXTS = ["오늘 날씨가 좋네요", "서울", "서울에서 부산까지 기차를 탔다 정말 오래 걸렸다", "부산 바다",
             "기차 안에서 잠을 잤다", "좋다", "정말 오래 걸렸다 오늘"]


def _generate_by_hand(folder, text, **kw):
    """``model.generate`` on one unpadded row: its texts and, as the session scores them, the
    beam scores or the mean log-probability of the tokens up to the first end token (and, for
    one candidate, how many tokens it generated before its end)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoTokenizer

    auto = AutoModelForSeq2SeqLM if AutoConfig.from_pretrained(folder).is_encoder_decoder else AutoModelForCausalLM
    model = auto.from_pretrained(folder, attn_implementation="eager").eval()
    tok = AutoTokenizer.from_pretrained(folder)
    enc = tok([text], return_tensors="pt")
    if "token_type_ids" not in __import__("inspect").signature(model.forward).parameters:
        enc.pop("token_type_ids", None)  # a BART tokenizer trained here returns them; 4.46's generate refuses them
    torch.manual_seed(kw.pop("seed", 0))
    out = model.generate(**enc, output_scores=True, return_dict_in_generate=True, **kw)
    seqs = out.sequences if model.config.is_encoder_decoder else out.sequences[:, enc["input_ids"].shape[1]:]
    if getattr(out, "sequences_scores", None) is not None:
        return tok.batch_decode(seqs, skip_special_tokens=True), out.sequences_scores.numpy(), None
    trans = model.compute_transition_scores(out.sequences, out.scores, normalize_logits=True).numpy()
    gen = out.sequences[:, -trans.shape[1]:].numpy()
    scores = []
    for t, g in zip(trans, gen):
        stop = next((j for j, x in enumerate(g) if x == model.generation_config.eos_token_id), len(g) - 1)
        scores.append(t[:stop + 1].mean())
    return tok.batch_decode(seqs, skip_special_tokens=True), np.array(scores), stop


@pytest.mark.parametrize("arch", ["bart", "t5", "gpt2"])
def test_generation_equals_generate_row_by_row_in_input_order(gen_dirs, tmp_path, arch):
    split = _split(tmp_path, GEN_TEXTS)
    settings = dict(max_new_tokens=8, no_repeat_ngram_size=2)
    out = predict_forward(gen_dirs[arch], split, "generation", batch_size=3, device="cpu", progress=False,
                          cache=False, **settings)
    lengths = [len(t) for t in GEN_TEXTS]
    assert np.argsort(lengths, kind="stable").tolist() != list(range(len(lengths)))  # sorting reorders them
    assert out.ids.tolist() == split.ids.tolist() and out.offsets.tolist() == list(range(len(GEN_TEXTS) + 1))
    assert out.scores.dtype == np.float32 and out.meta["forward"] == "generation"
    stops = []
    for i, t in enumerate(GEN_TEXTS):
        texts, scores, stop = _generate_by_hand(gen_dirs[arch], t, **settings)
        assert list(out.texts[i]) == texts, (i, t)
        # batched rows are padded and this row is not: float32 attention over a padded batch moves
        # the mean log-probability by a few 1e-4 (T5 with this session's tokenizer: 1.9e-4)
        np.testing.assert_allclose(out.scores[i:i + 1], scores, atol=1e-3, rtol=0)
        stops.append(stop)
    assert any(out.texts[i] for i in range(len(GEN_TEXTS)))
    if arch == "bart":  # some rows end before the others: their means stop at the end token (where
        # each row ends depends on the tokenizer trained in this session: only that they differ is fixed)
        assert min(stops) < 7 and min(stops) < max(stops), stops


@pytest.mark.parametrize("arch", ["t5", "gpt2"])
def test_a_prompt_template_is_what_generate_reads(gen_dirs, tmp_path, arch):
    """``prompt``: each text in the template, then generated as generate does on that text; the
    template is a setting of the cache key, and one without {text} is refused."""
    split = _split(tmp_path, GEN_TEXTS[:4])
    prompt = "요약 해 줘: {text} 요약:"
    out = predict_forward(gen_dirs[arch], split, "generation", batch_size=2, device="cpu", progress=False,
                          cache=False, prompt=prompt, max_new_tokens=5)
    for i, t in enumerate(GEN_TEXTS[:4]):
        texts, _, _ = _generate_by_hand(gen_dirs[arch], prompt.replace("{text}", t), max_new_tokens=5)
        assert list(out.texts[i]) == texts, (i, t)
    assert GenerationForward(prompt=prompt).key_settings()["prompt"] == prompt
    assert "prompt" not in GenerationForward(prompt=prompt).generate_kwargs()
    with pytest.raises(EnsembleError, match=r"prompt must be a template with \{text\}"):
        GenerationForward(prompt="Summarize:")


def test_generate_settings_of_a_split_reach_the_forward_that_takes_them(tmp_path):
    """A split's generate settings ([generate], --generate) set the generation forward's; the other
    forwards refuse them in one line, and an unknown one is named."""
    from ensemble.data.splits import load_split
    from ensemble.inference.forwards import split_forward

    path = tmp_path / "d.csv"
    path.write_text("id,text\na,x\n", encoding="utf-8")
    split = load_split(path, generate={"num_beams": 4, "prompt": "S: {text}"})
    fw = split_forward("generation", split)
    assert (fw.num_beams, fw.prompt) == (4, "S: {text}")
    with pytest.raises(EnsembleError, match=r"d.csv: generate settings \(num_beams, prompt\) are for generation members"):
        split_forward("sequence", split)
    with pytest.raises(EnsembleError, match=r"unknown setting 'beams' of the generation forward"):
        split_forward("generation", load_split(path, generate={"beams": 4}))


def test_beams_give_num_return_sequences_candidates_per_row(gen_dirs, tmp_path):
    split = _split(tmp_path, GEN_TEXTS[:5])
    fw = GenerationForward(num_beams=3, num_return_sequences=2, max_new_tokens=6, length_penalty=1.0)
    out = ModelSession(open_model(gen_dirs["bart"], fw), CPU, forward=fw).run(split)
    assert out.offsets.tolist() == [0, 2, 4, 6, 8, 10] and out.scores.shape == (10,)
    for i, t in enumerate(GEN_TEXTS[:5]):
        texts, scores, _ = _generate_by_hand(gen_dirs["bart"], t, num_beams=3, num_return_sequences=2, max_new_tokens=6,
                                          length_penalty=1.0)
        assert list(out.texts[i]) == texts
        np.testing.assert_allclose(out.scores[2 * i:2 * i + 2], scores, atol=1e-4, rtol=0)


def test_sampling_is_seeded(gen_dirs, tmp_path):
    split = _split(tmp_path, GEN_TEXTS)
    fw = GenerationForward(do_sample=True, num_return_sequences=3, max_new_tokens=6, seed=7)
    ref = open_model(gen_dirs["bart"], fw)
    a, b = (ModelSession(ref, CPU, forward=fw).run(split) for _ in range(2))
    assert a.texts == b.texts and np.array_equal(a.scores, b.scores)
    assert all(len(t) == 3 for t in a.texts) and a.offsets[-1] == 3 * len(GEN_TEXTS)
    cache = OutputCache(tmp_path / "cache")
    ks = ModelSession(ref, CPU, cache, forward=fw).key_settings()
    assert ks["forward"] == "generation" and ks["seed"] == 7 and ks["num_beams"] is None
    assert ks["generation_config"] == cache.file_digest(gen_dirs["bart"] / "generation_config.json")
    greedy = GenerationForward(num_return_sequences=2)  # num_beams: the model's own (1), judged by generate
    with pytest.raises(EnsembleError, match=r"generate refused the settings \(.*num_return_sequences"):
        ModelSession(ref, CPU, forward=greedy).run(split)
    with pytest.raises(EnsembleError, match=r"the generation forward gives no logits; use ModelSession.run"):
        ModelSession(ref, CPU, forward=fw).logits(split)


def test_generations_are_cached_with_every_setting_in_the_key(gen_dirs, tmp_path):
    """A second run reads the candidates back without loading the model; another generation
    setting, or another generation_config.json, is a miss."""
    import shutil

    split = _split(tmp_path, GEN_TEXTS[:6])
    cache = OutputCache(tmp_path / "cache")
    fw = GenerationForward(num_beams=2, num_return_sequences=2, max_new_tokens=6)
    first = ModelSession(open_model(gen_dirs["bart"], fw), CPU, cache, forward=fw).run(split)
    assert first.meta["cached"] is False and cache.path_for(first.meta["key"]).is_file()
    again = ModelSession(open_model(gen_dirs["bart"], fw), CPU, cache, forward=fw)
    hit = again.run(split)
    assert hit.meta["cached"] is True and again._model is None  # no model loaded
    assert hit.texts == first.texts and np.array_equal(hit.scores, first.scores)
    assert list(hit.ids) == list(split.ids) and hit.offsets.tolist() == first.offsets.tolist()
    other = GenerationForward(num_beams=3, num_return_sequences=2, max_new_tokens=6)
    assert ModelSession(open_model(gen_dirs["bart"], other), CPU, cache, forward=other).run(split).meta["cached"] is False
    edited = tmp_path / "bart"
    shutil.copytree(gen_dirs["bart"], edited)
    config = json.loads((edited / "generation_config.json").read_text())
    (edited / "generation_config.json").write_text(json.dumps({**config, "repetition_penalty": 1.3}))
    moved = ModelSession(open_model(edited, fw), CPU, cache, forward=fw).run(split)
    assert moved.meta["cached"] is False


def test_a_split_of_words_runs_the_tokens_forward_with_them(tmp_path):
    """split_forward: the tokens forward takes a split's words setting (and its cache key says
    so); the sequence forward refuses a split of words in one line."""
    import pandas as pd

    from ensemble.core.errors import EnsembleError
    from ensemble.data.splits import load_split
    from ensemble.inference.forwards import split_forward

    pd.DataFrame({"id": ["a"], "tokens": [["x", "y"]]}).to_json(tmp_path / "w.jsonl", orient="records", lines=True)
    words = load_split(tmp_path / "w.jsonl", text="tokens", words="first")
    assert split_forward("tokens", words).key_settings()["words"] == "first"
    assert split_forward("tokens", load_split(tmp_path / "w.jsonl", text="tokens")).key_settings()["words"] is None
    with pytest.raises(EnsembleError, match="which the sequence forward does not read"):
        split_forward("sequence", words)
