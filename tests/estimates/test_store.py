"""The estimate store: content-addressed, checksummed, a damaged entry recomputed."""

from __future__ import annotations

import numpy as np

from ensemble.estimates.resampling import FoldPlan
from ensemble.estimates.store import EstimateStore, data_digest, input_digest


def test_keys_follow_the_content_of_arrays_labels_folds_and_options():
    y = np.array([0, 1] * 10)
    arrays = [np.arange(40, dtype=float).reshape(20, 2)]
    plan = FoldPlan.from_assignment([i % 2 for i in range(20)])
    d = data_digest(arrays, y, plan)
    assert d == data_digest([a.copy() for a in arrays], y.copy(), plan)
    assert d != data_digest(arrays, y[::-1].copy(), plan)
    assert d != data_digest(arrays, y, FoldPlan.from_assignment([i % 4 for i in range(20)]))
    assert input_digest(d, {"m": "acc"}) != input_digest(d, {"m": "optimize"})
    assert len(input_digest(d, {"m": "acc"})) == 40


def test_cached_computes_once_and_reads_back_and_damage_is_recomputed(tmp_path):
    store = EstimateStore(tmp_path)
    key = "ab" * 20
    calls = []

    def compute():
        calls.append(1)
        return {"score": 0.5, "proba": np.ones((3, 2))}

    def to_store(v):
        return {"score": v["score"]}, {"proba": v["proba"]}

    def from_store(doc, arrays):
        return {"score": doc["score"], "proba": arrays["proba"]}

    first = store.cached(key, compute, to_store, from_store)
    second = store.cached(key, compute, to_store, from_store)
    assert calls == [1] and second["score"] == 0.5 and np.array_equal(second["proba"], first["proba"])
    path = store.path_for(key)
    path.write_bytes(path.read_bytes()[:-20])  # cut
    third = store.cached(key, compute, to_store, from_store)
    assert calls == [1, 1] and third["score"] == 0.5
