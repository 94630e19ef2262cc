"""Hostile and concurrent use: shipped code is not run, two predicts share one cache, two
averages to one folder do not interleave."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ensemble.averaging.manifest import manifest_path
from ensemble.core.errors import EnsembleError
from ensemble.inference.cache import OutputCache
from ensemble.workflows.predict import predict_logits

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def model(runs, tmp_path):
    dst = tmp_path / "bert"
    shutil.copytree(runs.tok / "checkpoint-18", dst)
    return dst


@pytest.fixture
def valid(runs, tmp_path):
    path = tmp_path / "valid.csv"
    pd.DataFrame({"id": [f"v{i}" for i in range(len(runs.valid_texts))], "text": runs.valid_texts,
                  "label": runs.valid_labels}).to_csv(path, index=False)
    return path


def test_code_shipped_in_a_model_folder_is_not_run(model, valid, tmp_path):
    marker = tmp_path / "pwned"
    (model / "evil.py").write_text(f"open({str(marker)!r}, 'w').write('ran')\n")
    cfg = json.loads((model / "config.json").read_text())
    cfg["auto_map"] = {"AutoConfig": "evil.EvilConfig", "AutoModelForSequenceClassification": "evil.EvilModel"}
    (model / "config.json").write_text(json.dumps(cfg))
    # without --trust-remote-code transformers would ignore auto_map for a known model type (bert)
    # and load its own class, which is not the class the folder names: refused, evil.py never imported
    with pytest.raises(EnsembleError, match=r"auto_map names the model's own code \(evil.EvilModel\); without running "
                                            r"it transformers would build another class: pass trust_remote_code=True"):
        predict_logits(model, valid, cache=False, progress=False)
    assert not marker.exists()
    cfg["model_type"] = "evil-bert"  # an unknown type whose only class is the shipped code: refused
    (model / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(EnsembleError) as e:
        predict_logits(model, valid, cache=False, progress=False)
    assert str(e.value).startswith(str(model)) and "\n" not in str(e.value)
    assert not marker.exists()


def test_two_predict_processes_share_one_cache(model, valid, tmp_path):
    cache = tmp_path / "cache"
    cmd = [sys.executable, "-m", "ensemble", "predict", "--model", f"bert={model}", "--data", f"valid={valid}",
           "--cache-dir", str(cache)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1] for o in outs]
    entries = OutputCache(cache).entries()
    assert len(entries) == 1 and entries[0].damaged is None
    assert sorted("computed" in o[0].split("\n")[1] for o in outs) == [False, True]  # one computed, one waited and hit
    assert OutputCache(cache).get(entries[0].key) is not None
    assert not list(cache.glob(".*.tmp-*"))


def test_two_averages_to_one_folder_do_not_interleave(runs, tmp_path):
    out = tmp_path / "avg"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmds = [[sys.executable, "-m", "ensemble", "avg-ckpt", str(runs.tok), "--k", str(k), "--out", str(out), "--force", "-q"]
            for k in (2, 3)]
    procs = [subprocess.Popen(c, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) for c in cmds]
    for p in procs:
        assert p.wait(timeout=300) == 0, p.stderr.read()
    manifest = json.loads((out / "ensemble_manifest.json").read_text())
    from safetensors.numpy import load_file

    # the folder is one of the two averages, whole: its weights match its own manifest's checkpoints
    chosen = [manifest_path(out, c["path"]) for c in manifest["checkpoints"]]
    assert len(chosen) in (2, 3)
    got = load_file(str(out / "model.safetensors"))
    parts = [load_file(str(c / "model.safetensors")) for c in chosen]
    name = "classifier.weight"
    np.testing.assert_allclose(got[name], np.mean([p[name] for p in parts], axis=0), atol=1e-6)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".avg.tmp") or p.name.startswith(".avg.old")]


def test_weights_and_submission_carry_checksums(tmp_path):
    from blake3 import blake3

    from ensemble.tasks.classification.weights import Weights
    from ensemble.workflows.submission import write_submission

    w = Weights("fixed", ("a", "b"), np.array([0.25, 0.75]), labels=("x", "y"))
    path = w.save(tmp_path / "w.json")
    assert Weights.load(path).weights.tolist() == [0.25, 0.75]
    doc = json.loads(path.read_text())
    doc["models"][0]["weight"] = 0.9  # a hand edit, or a flipped digit
    path.write_text(json.dumps(doc))
    with pytest.raises(EnsembleError, match=r"checksum does not match its content"):
        Weights.load(path)
    out = tmp_path / "sub.csv"
    write_submission(["t1", "t2"], np.array([[0.9, 0.1], [0.2, 0.8]]), ["x", "y"], out=out)
    side = json.loads((tmp_path / "sub.csv.json").read_text())
    assert side["blake3"] == blake3(out.read_bytes()).hexdigest()
    assert out.read_text().splitlines() == ["id,label", "t1,x", "t2,y"]
