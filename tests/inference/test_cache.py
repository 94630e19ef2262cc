"""The logit cache: entries of every payload (dense, ragged, texts) round-trip with their ids and
header, damage is a miss that is said and removed, prune keeps what current models and data can
produce, and a dense entry is read and written as the previous main did."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from ensemble.core.errors import EnsembleError
from ensemble.core.outputs import Logits, Ragged, Texts
from ensemble.inference.cache import OutputCache, default_cache_dir


def _logits(n=5, c=3, seed=0):
    rng = np.random.default_rng(seed)
    return Logits(np.array([f"r{i}" for i in range(n)], dtype=object), rng.normal(size=(n, c)).astype(np.float32),
                  tuple("abc"[:c]), "m", "valid")


def _meta(model="md", data="dd"):
    return {"model": "m", "split": "valid", "model_digest": model, "data_digest": data,
            "settings": '{"max_tokens": 8}', "versions": "{}"}


def test_an_entry_round_trips_with_its_ids_labels_and_header(tmp_path):
    cache = OutputCache(tmp_path)
    key = OutputCache.make_key({"model": "md", "data": "dd"})
    lg = _logits()
    cache.put(key, lg, _meta())
    back = cache.get(key, ids=lg.ids)
    np.testing.assert_array_equal(back.values, lg.values)
    assert list(back.ids) == list(lg.ids) and back.labels == lg.labels and back.meta["model_digest"] == "md"
    (entry,) = cache.entries()
    assert entry.damaged is None and entry.rows == 5 and entry.settings == {"max_tokens": 8}
    assert cache.get(key, ids=np.array(["r0", "r1", "r2", "r3", "other"], dtype=object)) is None  # other rows: a miss


def test_a_flipped_byte_is_a_miss_that_is_said_and_removed(tmp_path):
    cache = OutputCache(tmp_path)
    key = OutputCache.make_key({"model": "md", "data": "dd"})
    path = cache.put(key, _logits(), _meta())
    data = bytearray(path.read_bytes())
    data[-3] ^= 0xFF
    path.write_bytes(bytes(data))
    problems = []
    assert cache.get(key, problems=problems) is None
    assert len(problems) == 1 and "checksum" in problems[0] and not path.exists()


def test_prune_keeps_what_current_models_and_data_produce(tmp_path):
    cache = OutputCache(tmp_path)
    for model, data in (("m1", "d1"), ("m1", "d2"), ("m2", "d1")):
        cache.put(OutputCache.make_key({"model": model, "data": data}), _logits(), _meta(model, data))
    removed = cache.prune({"m1"}, {"d1", "d2"}, dry_run=True)
    assert [e.metadata["model_digest"] for e in removed] == ["m2"] and len(cache.entries()) == 3
    cache.prune({"m1"}, {"d1"})
    assert sorted((e.metadata["model_digest"], e.metadata["data_digest"]) for e in cache.entries()) == [("m1", "d1")]


def test_the_default_folder_sits_beside_the_project_file(tmp_path):
    (tmp_path / "ensemble.toml").write_text("")
    (tmp_path / "a" / "b").mkdir(parents=True)
    assert default_cache_dir(tmp_path / "a" / "b") == tmp_path.resolve() / ".ensemble" / "cache"
    assert default_cache_dir(tmp_path.parent) == tmp_path.parent.resolve() / ".ensemble" / "cache"


# ---------------------------------------------------------------- payloads: ragged and texts

PREVIOUS_MAIN = Path(__file__).resolve().parents[1] / "data" / "previous-main" / "cache"
KOREAN = np.array(["가", "나다", "r2", "라마바"], dtype=object)


def _ragged():
    rng = np.random.default_rng(1)
    return Ragged.from_rows(KOREAN, [rng.random((3, 2)), np.zeros((0, 2)), rng.random((1, 2)), rng.random((5, 2))],
                            ("B-PER", "O"), "tagger", "valid")


def _texts():
    return Texts.from_candidates(KOREAN, [[("오늘은 날씨가 좋다", -0.25), ("좋은 하루", -1.5)], [],
                                          [("", -np.inf)], [("한 줄", 0.0), ("두 줄", -2.0), ("세 줄 😀", -3.0)]],
                                 "gen", "valid")


def test_a_ragged_entry_round_trips_with_a_row_of_no_units(tmp_path):
    cache = OutputCache(tmp_path)
    key = OutputCache.make_key({"model": "md", "data": "dd", "task": "tokens"})
    rg = _ragged()
    cache.put(key, rg, _meta())
    back = cache.get(key, ids=KOREAN)
    assert isinstance(back, Ragged) and back.kind == "ragged" and back.labels == ("B-PER", "O")
    np.testing.assert_array_equal(back.values, rg.values)
    np.testing.assert_array_equal(back.offsets, [0, 3, 3, 4, 9])
    assert back.row(1).shape == (0, 2) and list(back.ids) == list(KOREAN)
    assert back.meta["payload"] == "ragged" and back.meta["model_digest"] == "md" and back.meta["settings"] == {"max_tokens": 8}
    (entry,) = cache.entries()
    assert entry.damaged is None and entry.payload == "ragged" and entry.rows == 4 and entry.metadata["units"] == "9"
    assert cache.get(key, ids=KOREAN[::-1]) is None  # other rows: a miss


def test_a_texts_entry_round_trips_korean_and_rows_without_candidates(tmp_path):
    cache = OutputCache(tmp_path)
    key = OutputCache.make_key({"model": "md", "data": "dd", "task": "generate"})
    tx = _texts()
    cache.put(key, tx, {**_meta(), "payload": "dense"})  # the cache says the payload, not the caller
    back = cache.get(key, ids=KOREAN)
    assert isinstance(back, Texts) and back.kind == "texts" and back.texts == tx.texts
    assert back.candidates(0) == [("오늘은 날씨가 좋다", -0.25), ("좋은 하루", -1.5)]
    assert back.candidates(1) == [] and back.candidates(2) == [("", -np.inf)]
    assert back.candidates(3)[2] == ("세 줄 😀", -3.0) and back.scores.dtype == np.float32
    (entry,) = cache.entries()
    assert entry.payload == "texts" and entry.rows == 4 and entry.metadata["candidates"] == "6"
    empty = Texts(np.array([], dtype=object), (), np.zeros(0, np.float32))
    cache.put(key, empty, _meta())
    assert len(cache.get(key)) == 0


def test_a_corrupted_or_truncated_ragged_entry_is_a_miss_that_is_said_and_removed(tmp_path):
    cache = OutputCache(tmp_path)
    key = OutputCache.make_key({"model": "md", "data": "dd", "task": "tokens"})
    for damage, said in ((lambda b: b[:-20], "truncated or corrupt"), (_flip_value, "values checksum"),
                         (lambda b: b.replace(b'"payload":"ragged"', b'"payload": "texts"'), "header checksum")):
        path = cache.put(key, _ragged(), _meta())
        path.write_bytes(damage(path.read_bytes()))
        problems = []
        assert cache.get(key, problems=problems) is None
        assert len(problems) == 1 and said in problems[0] and not path.exists(), problems


def _flip_value(data: bytes) -> bytes:
    """A flipped bit in the first value of a ragged entry (its first tensor)."""
    import struct

    (n,) = struct.unpack("<Q", data[:8])
    out = bytearray(data)
    out[8 + n] ^= 0x01
    return bytes(out)


def test_an_entry_of_an_unknown_payload_is_damaged_not_misread(tmp_path):
    cache = OutputCache(tmp_path)
    key = OutputCache.make_key({"model": "md", "data": "dd"})
    path = cache.put(key, _ragged(), _meta())
    path.write_bytes(path.read_bytes().replace(b'"payload":"ragged"', b'"payload":"future"'))
    (entry,) = cache.entries()
    assert entry.damaged == "payload 'future'" and entry.payload == "future"
    problems = []
    assert cache.get(key, problems=problems) is None and "unknown payload 'future'" in problems[0]


def test_non_finite_values_or_nan_scores_are_not_cached(tmp_path):
    cache = OutputCache(tmp_path)
    key = OutputCache.make_key({"model": "md", "data": "dd"})
    rg = _ragged()
    rg.values[0, 0] = np.inf
    with pytest.raises(EnsembleError, match="NaN or infinite values"):
        cache.put(key, rg, _meta())
    tx = _texts()
    object.__setattr__(tx, "scores", np.full_like(tx.scores, np.nan))
    with pytest.raises(EnsembleError, match="NaN scores"):
        cache.put(key, tx, _meta())
    assert cache.entries() == []


def test_prune_and_entries_see_every_payload(tmp_path):
    cache = OutputCache(tmp_path)
    for payload, model in ((_logits(), "m1"), (_ragged(), "m2"), (_texts(), "m3")):
        cache.put(OutputCache.make_key({"model": model, "data": "d"}), payload, _meta(model, "d"))
    assert sorted(e.payload for e in cache.entries()) == ["dense", "ragged", "texts"]
    assert all(e.damaged is None and e.rows in (4, 5) for e in cache.entries())
    removed = cache.prune({"m1", "m3"}, {"d"})
    assert [e.payload for e in removed] == ["ragged"]
    assert sorted(e.payload for e in cache.entries()) == ["dense", "texts"]


def test_entries_of_the_previous_main_are_read_as_dense(tmp_path):
    shutil.copytree(PREVIOUS_MAIN, tmp_path / "cache")
    cache = OutputCache(tmp_path / "cache")
    entries = cache.entries()
    assert len(entries) == 4 and all(e.payload == "dense" and "payload" not in e.metadata for e in entries)
    for e in entries:
        problems = []
        lg = cache.get(e.key, problems=problems)
        assert problems == [] and isinstance(lg, Logits) and lg.kind == "dense" and lg.values.shape == (e.rows, 2)


def test_a_dense_entry_is_written_byte_for_byte_as_the_previous_main_wrote_it(tmp_path, monkeypatch):
    """Same header fields in the same order, same tensors: no ``payload`` field in a dense entry."""
    import time

    import ensemble.inference.cache as module
    from ensemble.io.tensors import SafetensorsFile

    written = {"schema", "key", "rows", "labels", "logits_blake3", "ids_blake3", "created_utc", "header_blake3"}
    shutil.copytree(PREVIOUS_MAIN, tmp_path / "old")
    old = OutputCache(tmp_path / "old")
    for path in sorted((tmp_path / "old").glob("*.safetensors")):
        with SafetensorsFile(path) as f:
            header = dict(f.metadata)
        given = {k: v for k, v in header.items() if k not in written}  # what session.py passed, in its order
        when = time.strptime(header["created_utc"], "%Y-%m-%dT%H:%M:%SZ")
        monkeypatch.setattr(module.time, "gmtime", lambda *a, when=when: when)
        lg = old.get(path.stem)
        again = OutputCache(tmp_path / "new").put(path.stem, lg, given)
        assert again.read_bytes() == path.read_bytes(), path.name
