"""predict_logits against the model's own forward pass, and the logit cache's keys and checks."""

from __future__ import annotations

import os
import shutil
import time

import numpy as np
import pandas as pd
import pytest

from ensemble.core.errors import EnsembleError
from ensemble.data.splits import load_split
from ensemble.inference.cache import OutputCache
from ensemble.inference.models import ModelRef
from ensemble.workflows.predict import predict_logits

from ..conftest import edit_config


@pytest.fixture(scope="module")
def model_dir(runs, tmp_path_factory):
    """A copy of the last checkpoint of the run that saved its tokenizer, with an old mtime so
    that file digests are memoised."""
    dst = tmp_path_factory.mktemp("model") / "bert"
    shutil.copytree(runs.tok / "checkpoint-18", dst)
    old = time.time() - 3600
    for p in dst.iterdir():
        os.utime(p, (old, old))
    return dst


@pytest.fixture(scope="module")
def valid_csv(runs, tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "valid.csv"
    pd.DataFrame({"id": [f"v{i}" for i in range(len(runs.valid_texts))], "text": runs.valid_texts,
                  "label": runs.valid_labels}).to_csv(path, index=False)
    return path


def _reference(model_dir, texts, max_length=None, pairs=None):
    """The model's own forward pass, one unpadded example at a time."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(model_dir, attn_implementation="eager").eval()
    tok = AutoTokenizer.from_pretrained(model_dir)
    limit = max_length or model.config.max_position_embeddings
    out = []
    with torch.no_grad():
        for i, t in enumerate(texts):
            args = (t, pairs[i]) if pairs is not None else (t,)
            enc = tok(*args, return_tensors="pt", truncation=True, max_length=limit)
            out.append(model(**enc).logits[0].float().numpy())
    return np.stack(out)


def test_logits_equal_unpadded_forward_in_input_order(model_dir, valid_csv, tmp_path):
    split = load_split(valid_csv)
    lg = predict_logits(model_dir, split, batch_size=7, cache=False, progress=False)
    ref = _reference(model_dir, split.texts[0])
    assert lg.values.dtype == np.float32 and lg.values.shape == (len(split), 3)
    np.testing.assert_allclose(lg.values, ref, atol=1e-4, rtol=0)
    assert lg.ids.tolist() == split.ids.tolist()
    assert lg.labels == tuple(ModelRef.open(model_dir).labels)
    # padding to a multiple and another batch size give the same numbers
    lg8 = predict_logits(model_dir, split, batch_size=16, pad_to_multiple_of=8, cache=False, progress=False)
    np.testing.assert_allclose(lg8.values, ref, atol=1e-4, rtol=0)


def test_text_pairs_and_truncation_is_counted(model_dir, tmp_path, caplog):
    a = ["가나다라마바사" * 3, "짧다", "아자차카타파하" * 2]
    b = ["두 번째 문장", "또 다른 문장입니다" * 4, "끝"]
    path = tmp_path / "pairs.csv"
    pd.DataFrame({"id": ["p0", "p1", "p2"], "s1": a, "s2": b}).to_csv(path, index=False)
    split = load_split(path, text=["s1", "s2"])
    with caplog.at_level("INFO", logger="ensemble"):
        lg = predict_logits(model_dir, split, max_length=24, batch_size=2, cache=False, progress=False)
    np.testing.assert_allclose(lg.values, _reference(model_dir, a, 24, b), atol=1e-4, rtol=0)
    lengths = [len(x) for x in __import__("transformers").AutoTokenizer.from_pretrained(model_dir)(a, b)["input_ids"]]
    expected = sum(n > 24 for n in lengths)
    assert expected >= 1
    assert caplog.text.count("were truncated") == 1
    assert f"{expected} of 3 texts are longer than 24 tokens (max_length)" in caplog.text  # the library names its keyword


@pytest.fixture
def fresh_model(model_dir, tmp_path):
    dst = tmp_path / "model"
    shutil.copytree(model_dir, dst)
    old = time.time() - 3600
    for p in dst.iterdir():
        os.utime(p, (old, old))
    return dst


def _no_model_loading(monkeypatch):
    import transformers

    def refuse(*a, **k):
        raise AssertionError("a cache hit must not load a model or tokenizer")

    monkeypatch.setattr(transformers.AutoModelForSequenceClassification, "from_pretrained", refuse)
    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", refuse)


def test_cache_hit_loads_no_model_and_content_changes_miss(fresh_model, valid_csv, tmp_path, monkeypatch):
    cache = OutputCache(tmp_path / "cache")
    split = load_split(valid_csv)
    first = predict_logits(fresh_model, split, cache=cache, progress=False)
    assert first.meta["cached"] is False and len(cache.entries()) == 1

    with monkeypatch.context() as m:
        _no_model_loading(m)
        hit = predict_logits(fresh_model, split, cache=cache, progress=False)
        assert hit.meta["cached"] is True
        np.testing.assert_array_equal(hit.values, first.values)
        assert hit.ids.tolist() == first.ids.tolist() and hit.labels == first.labels
        # touching files without changing them re-hashes them and still hits
        for p in fresh_model.iterdir():
            os.utime(p)
        os.utime(valid_csv)
        assert predict_logits(fresh_model, load_split(valid_csv), cache=cache, progress=False).meta["cached"]

    # one text changed: a miss
    df = pd.read_csv(valid_csv, dtype=str, keep_default_na=False)
    df.loc[5, "text"] = df.loc[5, "text"] + "!"
    changed = tmp_path / "valid.csv"
    df.to_csv(changed, index=False)
    assert predict_logits(fresh_model, load_split(changed), cache=cache, progress=False).meta["cached"] is False

    # another max_length: a miss
    assert predict_logits(fresh_model, split, cache=cache, max_length=16, progress=False).meta["cached"] is False

    # one weight changed in place: same path, same size, new mtime: a miss with other numbers
    weights = fresh_model / "model.safetensors"
    size = weights.stat().st_size
    with open(weights, "r+b") as f:
        f.seek(size - 4)  # the last float32 of the last tensor
        f.write(np.float32(3.0).tobytes())
    assert weights.stat().st_size == size
    after = predict_logits(fresh_model, split, cache=cache, progress=False)
    assert after.meta["cached"] is False and after.meta["key"] != first.meta["key"]
    assert len(cache.entries()) == 4


def test_damaged_entries_are_detected_and_recomputed(fresh_model, valid_csv, tmp_path, caplog):
    cache = OutputCache(tmp_path / "cache")
    split = load_split(valid_csv)
    first = predict_logits(fresh_model, split, cache=cache, progress=False)
    entry = cache.path_for(first.meta["key"])
    data = entry.read_bytes()

    for damage in ("cut", "flip"):
        if damage == "cut":
            entry.write_bytes(data[: len(data) // 2])
        else:
            raw = bytearray(data)
            raw[-300] ^= 0x40  # inside the logits or ids, past the header
            entry.write_bytes(bytes(raw))
        with caplog.at_level("WARNING", logger="ensemble"):
            caplog.clear()
            again = predict_logits(fresh_model, split, cache=cache, progress=False)
        assert "damaged cache entry" in caplog.text, damage
        assert again.meta["cached"] is False
        np.testing.assert_allclose(again.values, first.values, atol=1e-6)
        assert entry.read_bytes() == data or cache.get(first.meta["key"], split.ids) is not None


def test_entry_with_other_ids_is_not_used(fresh_model, valid_csv, tmp_path):
    cache = OutputCache(tmp_path / "cache")
    split = load_split(valid_csv)
    first = predict_logits(fresh_model, split, cache=cache, progress=False)
    assert cache.get(first.meta["key"], split.ids[::-1]) is None  # removed as damaged
    assert not cache.path_for(first.meta["key"]).exists()


def test_prune_keeps_entries_of_current_models_and_data(fresh_model, valid_csv, tmp_path):
    cache = OutputCache(tmp_path / "cache")
    split = load_split(valid_csv)
    keep = predict_logits(fresh_model, split, cache=cache, progress=False)
    other = tmp_path / "other.csv"
    pd.read_csv(valid_csv).head(10).to_csv(other, index=False)
    gone = predict_logits(fresh_model, load_split(other), cache=cache, progress=False)
    digest = ModelRef.open(fresh_model).fingerprint(cache.file_digest)
    assert [e.key for e in cache.prune([digest], [split.digest], dry_run=True)] == [gone.meta["key"]]
    assert len(cache.entries()) == 2
    cache.prune([digest], [split.digest])
    assert [e.key for e in cache.entries()] == [keep.meta["key"]]


@pytest.mark.parametrize("change, message", [
    ({"num_labels": 5}, r"num_labels is 5 but id2label names 3 classes"),
    ({"id2label": {"0": "a", "1": "b"}}, r"id2label names 2 classes but the classification head has 3 outputs"),
])
def test_label_map_that_does_not_match_the_head(fresh_model, change, message):
    edit_config(fresh_model, **change)
    with pytest.raises(EnsembleError, match=message):
        ModelRef.open(fresh_model)


def test_model_without_tokenizer(fresh_model, valid_csv):
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        (fresh_model / name).unlink(missing_ok=True)
    with pytest.raises(EnsembleError, match=r"no tokenizer files .*copy the base model's tokenizer files"):
        predict_logits(fresh_model, valid_csv, cache=False)


def test_label_the_model_does_not_know(model_dir, tmp_path):
    path = tmp_path / "v.csv"
    pd.DataFrame({"id": [1, 2], "text": ["a", "b"], "label": ["none", "spam"]}).to_csv(path, index=False)
    with pytest.raises(EnsembleError, match=r"label 'spam' \(row 2\) is not a class of .*classes: .*hate"):
        predict_logits(model_dir, path, cache=tmp_path / "cache", progress=False)
    assert not (tmp_path / "cache").exists() or not list((tmp_path / "cache").glob("*.safetensors"))
