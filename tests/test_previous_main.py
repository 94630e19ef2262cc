"""What the previous main wrote (tests/data/previous-main: the flat layout's cache entries, an
average and a weights file) is read by this code as it was: the cache keys are the same, so every
entry is a hit; the average is up to date; the weights file is reused and votes the same bytes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

FIXTURE = Path(__file__).parent / "data" / "previous-main"


def _copy(tmp_path) -> Path:
    root = tmp_path / "previous-main"
    shutil.copytree(FIXTURE, root)
    return root


def _recorded_versions(root: Path) -> dict:
    from ensemble.inference.cache import OutputCache

    (entry,) = {e.metadata["versions"] for e in OutputCache(root / "cache").entries()}
    return json.loads(entry)


def test_cache_entries_of_the_previous_main_are_hits(tmp_path, monkeypatch):
    """The key of every (model, split) computed now is the file name the previous main wrote
    (with the library versions its entries record: the key includes them), and predict reads the
    entry instead of running the model."""
    import ensemble.inference.session as session
    from ensemble import load_split, predict_logits
    from ensemble.inference.cache import OutputCache

    root = _copy(tmp_path)
    versions = _recorded_versions(root)
    monkeypatch.setattr(session, "library_versions", lambda: dict(versions))
    written = {p.stem for p in (root / "cache").glob("*.safetensors")}
    assert len(written) == 4
    read = set()
    for model in (root / "weights" / "avg", root / "run" / "checkpoint-2"):
        for name in ("valid", "test"):
            split = load_split(root / f"{name}.csv", name=name, label_if_present=True)
            lg = predict_logits(model, split, cache=root / "cache", progress=False)
            assert lg.meta["cached"] is True, (model, name)
            read.add(Path(lg.meta["cache_path"]).stem)
            stored = OutputCache(root / "cache").get(Path(lg.meta["cache_path"]).stem)
            np.testing.assert_array_equal(lg.values, stored.values)
    assert read == written


def test_an_average_of_the_previous_main_is_up_to_date(tmp_path, caplog):
    from ensemble import average_checkpoints

    root = _copy(tmp_path)
    out = root / "weights" / "avg"
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    with caplog.at_level("INFO", logger="ensemble"):
        again = average_checkpoints([root / "run" / "checkpoint-1", root / "run" / "checkpoint-2"], out=out,
                                    progress=False)
    assert again == out and "up to date" in caplog.text
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_a_weights_file_of_the_previous_main_is_reused_and_votes_the_same_submission(tmp_path):
    from ensemble import vote

    root = _copy(tmp_path)
    members = {"avg": root / "weights" / "avg", "ck2": root / "run" / "checkpoint-2"}
    data = {"valid": root / "valid.csv", "test": root / "test.csv"}
    frame = vote(members, data, root / "weights" / "ensemble-optimize.json", cache_dir=root / "cache",
                 columns={"label_if_present": True}, out=tmp_path / "again.csv")
    assert frame.attrs["weights"].method == "optimize"
    assert (tmp_path / "again.csv").read_bytes() == (root / "submissions" / "ensemble-optimize.csv").read_bytes()
