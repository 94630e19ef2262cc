"""`ensemble predict` and `ensemble cache`: output, errors, and the same cache under accelerate."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from ensemble.cli.main import main
from ensemble.inference.cache import OutputCache


@pytest.fixture(scope="module")
def project(runs, tmp_path_factory):
    """A model folder and three splits: 64 labelled rows, 13 unlabelled, and a single row."""
    root = tmp_path_factory.mktemp("project")
    shutil.copytree(runs.tok / "checkpoint-18", root / "bert")
    ids = [f"v{i}" for i in range(len(runs.valid_texts))]
    pd.DataFrame({"id": ids, "text": runs.valid_texts, "label": runs.valid_labels}).to_csv(root / "valid.csv", index=False)
    pd.DataFrame({"id": ids[:13], "text": runs.valid_texts[:13]}).to_csv(root / "test.csv", index=False)
    pd.DataFrame({"id": ["only"], "text": [runs.valid_texts[20]]}).to_csv(root / "one.csv", index=False)
    return root


def _invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def test_predict_then_cached_and_listed(project, tmp_path):
    cache = tmp_path / "cache"
    args = ["predict", "--model", f"bert={project / 'bert'}", "--data", f"valid={project / 'valid.csv'}",
            "--data", f"test={project / 'test.csv'}", "--cache-dir", cache]
    first = _invoke(*args)
    assert first.exit_code == 0, first.output
    lines = first.stdout.splitlines()
    assert lines[0].split()[:5] == ["model", "split", "rows", "logits", "accuracy"]
    valid_row = next(line.split() for line in lines if line.startswith("bert") and " valid " in line)
    assert valid_row[2:4] == ["64", "computed"] and 0 <= float(valid_row[4]) <= 1
    assert "2 computed, 0 from the cache" in first.stdout

    second = _invoke(*args)
    assert "0 computed, 2 from the cache" in second.stdout
    assert all(" cached " in line for line in second.stdout.splitlines()[1:3])

    listing = _invoke("cache", "ls", "--cache-dir", cache)
    rows = [line.split() for line in listing.stdout.splitlines()[1:-1]]
    assert sorted((r[1], r[2], r[3]) for r in rows) == [("bert", "test", "13"), ("bert", "valid", "64")]

    pruned = _invoke("cache", "prune", "--model", f"bert={project / 'bert'}", "--data",
                     f"valid={project / 'valid.csv'}", "--cache-dir", cache)
    assert "1 removed, 1 kept" in pruned.stdout
    assert [e.metadata["split"] for e in OutputCache(cache).entries()] == ["valid"]
    assert not list(cache.glob(".*.lock"))  # the locks predict left, held by nobody, go too


@pytest.mark.parametrize("args, message", [
    (["--data", "v={valid}"], "no model given; pass --model NAME=PATH"),
    (["--model", "{bert}"], "no data given; pass --data SPLIT=PATH"),
    (["--model", "{bert}", "--data", "v={valid}", "--text", "comment"],
     "valid.csv: no text column 'comment' (columns: id, text, label); pass --text"),
    (["--model", "{bert}", "--data", "v={missing}"], "nope.csv: not found"),
    (["--model", "a/b={bert}", "--data", "v={valid}"], "model name 'a/b' must be"),
    (["--model", "{bert}", "--model", "{bert}", "--data", "v={valid}"], "model name 'bert' is given twice"),
    (["--model", "{valid}", "--data", "v={valid}"], "valid.csv: not a folder"),
])
def test_bad_input_is_one_line_and_leaves_no_entry(project, tmp_path, args, message):
    fmt = {"bert": project / "bert", "valid": project / "valid.csv", "missing": project / "nope.csv"}
    cache = tmp_path / "cache"
    result = CliRunner().invoke(main, ["predict", *[a.format(**fmt) for a in args], "--cache-dir", str(cache)])
    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: ") and message in result.stderr
    assert "Traceback" not in result.output
    assert not list(cache.glob("*.safetensors")) if cache.exists() else True


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _predict_args(project, cache):
    return ["predict", "--model", f"bert={project / 'bert'}", "--data", f"valid={project / 'valid.csv'}",
            "--data", f"one={project / 'one.csv'}", "--batch-size", "5", "--cache-dir", str(cache), "-q"]


def _accelerate(args, timeout=300):
    # `accelerate launch --cpu` starts one process unless MPI is installed; --multi_gpu starts
    # them with torchrun, and ensemble asks accelerate for CPU processes when there is no GPU.
    for attempt in range(2):  # a second try with another port if the first was taken meanwhile
        cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
               "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
               "--main_process_port", str(_free_port()), "-m", "ensemble", *args]
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        if result.returncode == 0 or "address already in use" not in result.stderr.lower():
            return result
    return result


def test_accelerate_two_processes_match_single_and_share_the_cache(project, tmp_path):
    """64 rows in batches of 5 (not a multiple of 2 x 5) and a 1-row split (fewer rows than
    processes): identical ids and logits; each run finds the other's entries."""
    dist_cache, single_cache = tmp_path / "dist", tmp_path / "single"
    run = _accelerate(_predict_args(project, dist_cache))
    assert run.returncode == 0, run.stderr[-3000:]
    single = _invoke(*_predict_args(project, single_cache))
    assert single.exit_code == 0

    def load(cache):
        return {e.metadata["split"]: OutputCache(cache).get(e.key) for e in OutputCache(cache).entries()}

    dist, ref = load(dist_cache), load(single_cache)
    assert sorted(dist) == sorted(ref) == ["one", "valid"]
    assert [e.key for e in OutputCache(dist_cache).entries()] == [e.key for e in OutputCache(single_cache).entries()]
    for name in ref:
        assert dist[name].ids.tolist() == ref[name].ids.tolist()
        np.testing.assert_allclose(dist[name].values, ref[name].values, atol=1e-5, rtol=0)

    # the single-process run finds the distributed run's entries, and the reverse
    again = _invoke(*[a for a in _predict_args(project, dist_cache) if a != "-q"])
    assert "0 computed, 2 from the cache" in again.stdout
    back = _accelerate([a for a in _predict_args(project, single_cache) if a != "-q"])
    assert back.returncode == 0, back.stderr[-3000:]
    assert "0 computed, 2 from the cache" in back.stdout
    assert back.stdout.count("from the cache") == 1  # only the main process reports
    assert Path(single_cache).is_dir()


def test_progress_total_is_known_up_front_and_never_grows(project, tmp_path, monkeypatch):
    """One bar per model over every split: its total is set once, it never runs past it, and
    it ends full, also when one split comes from the cache."""
    import tqdm.auto

    bars = []

    class Recorder:
        def __init__(self, total=None, **kwargs):
            self.total, self.n, self.seen = total, 0, []
            bars.append(self)

        def update(self, k=1):
            self.n += k
            self.seen.append((self.total, self.n))

        def refresh(self):
            self.seen.append((self.total, self.n))

        def close(self):
            pass

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    monkeypatch.setattr(tqdm.auto, "tqdm", Recorder)
    cache = tmp_path / "cache"
    _invoke("predict", "--model", f"bert={project / 'bert'}", "--data", f"test={project / 'test.csv'}",
            "--cache-dir", cache, "--batch-size", 5)  # cached before the second run
    args = ["predict", "--model", f"bert={project / 'bert'}", "--data", f"valid={project / 'valid.csv'}",
            "--data", f"test={project / 'test.csv'}", "--data", f"one={project / 'one.csv'}",
            "--cache-dir", cache, "--batch-size", 5]
    assert _invoke(*args).exit_code == 0
    bar = bars[-1]
    assert bar.total == 13 + 3 + 1  # ceil(64/5) + ceil(13/5) + ceil(1/5)
    assert all(total == bar.total and n <= bar.total for total, n in bar.seen)
    assert bar.n == bar.total
