"""The logit cache: entries round-trip with their ids and header, damage is a miss that is said
and removed, and prune keeps what current models and data can produce."""

from __future__ import annotations

import numpy as np

from ensemble.core.outputs import Logits
from ensemble.inference.cache import LogitCache, default_cache_dir


def _logits(n=5, c=3, seed=0):
    rng = np.random.default_rng(seed)
    return Logits(np.array([f"r{i}" for i in range(n)], dtype=object), rng.normal(size=(n, c)).astype(np.float32),
                  tuple("abc"[:c]), "m", "valid")


def _meta(model="md", data="dd"):
    return {"model": "m", "split": "valid", "model_digest": model, "data_digest": data,
            "settings": '{"max_tokens": 8}', "versions": "{}"}


def test_an_entry_round_trips_with_its_ids_labels_and_header(tmp_path):
    cache = LogitCache(tmp_path)
    key = LogitCache.make_key({"model": "md", "data": "dd"})
    lg = _logits()
    cache.put(key, lg, _meta())
    back = cache.get(key, ids=lg.ids)
    np.testing.assert_array_equal(back.values, lg.values)
    assert list(back.ids) == list(lg.ids) and back.labels == lg.labels and back.meta["model_digest"] == "md"
    (entry,) = cache.entries()
    assert entry.damaged is None and entry.rows == 5 and entry.settings == {"max_tokens": 8}
    assert cache.get(key, ids=np.array(["r0", "r1", "r2", "r3", "other"], dtype=object)) is None  # other rows: a miss


def test_a_flipped_byte_is_a_miss_that_is_said_and_removed(tmp_path):
    cache = LogitCache(tmp_path)
    key = LogitCache.make_key({"model": "md", "data": "dd"})
    path = cache.put(key, _logits(), _meta())
    data = bytearray(path.read_bytes())
    data[-3] ^= 0xFF
    path.write_bytes(bytes(data))
    problems = []
    assert cache.get(key, problems=problems) is None
    assert len(problems) == 1 and "checksum" in problems[0] and not path.exists()


def test_prune_keeps_what_current_models_and_data_produce(tmp_path):
    cache = LogitCache(tmp_path)
    for model, data in (("m1", "d1"), ("m1", "d2"), ("m2", "d1")):
        cache.put(LogitCache.make_key({"model": model, "data": data}), _logits(), _meta(model, data))
    removed = cache.prune({"m1"}, {"d1", "d2"}, dry_run=True)
    assert [e.metadata["model_digest"] for e in removed] == ["m2"] and len(cache.entries()) == 3
    cache.prune({"m1"}, {"d1"})
    assert sorted((e.metadata["model_digest"], e.metadata["data_digest"]) for e in cache.entries()) == [("m1", "d1")]


def test_the_default_folder_sits_beside_the_project_file(tmp_path):
    (tmp_path / "ensemble.toml").write_text("")
    (tmp_path / "a" / "b").mkdir(parents=True)
    assert default_cache_dir(tmp_path / "a" / "b") == tmp_path.resolve() / ".ensemble" / "cache"
    assert default_cache_dir(tmp_path.parent) == tmp_path.parent.resolve() / ".ensemble" / "cache"
