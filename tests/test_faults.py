"""Fault injection: writers killed with SIGKILL at random points never leave an artifact that is
found partial; interrupted commands exit cleanly and remove their temporary files."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

CHILD = Path(__file__).with_name("fault_child.py")
TRIALS = 30
ROOT = Path(__file__).resolve().parents[1]


def _setup_average(folder: Path, rows: int = 1024) -> None:
    from ensemble.io.tensors import SafetensorsWriter

    rng = np.random.default_rng(0)
    for name in ("ck1", "ck2"):
        ck = folder / name
        ck.mkdir(parents=True)
        (ck / "config.json").write_text(json.dumps({"model_type": "bert", "architectures": ["BertForSequenceClassification"],
                                                    "id2label": {"0": "a", "1": "b"}}))
        tensors = [(f"w{i}", "F32", (rows, 1024)) for i in range(6)]
        w = SafetensorsWriter(ck / "model.safetensors", tensors, {"format": "pt"})
        for t, _, shape in tensors:
            w.write(t, rng.normal(size=shape).astype(np.float32))
        w.close()
    (folder / "tok").mkdir()
    (folder / "tok" / "vocab.txt").write_text("[PAD]\n[UNK]\n")


def _partial(kind: str, folder: Path) -> str | None:
    """Why the artifact at its final path is unusable, or None (absent or complete)."""
    import pandas as pd

    if kind == "cache":
        from ensemble.inference.cache import OutputCache

        from .fault_child import KEY, ROWS

        path = folder / "cache" / f"{KEY}.safetensors"
        if path.exists():
            lg = OutputCache(folder / "cache").get(KEY)
            if lg is None or len(lg) != ROWS:
                return "cache entry unreadable"
    elif kind == "weights":
        from ensemble.tasks.classification.weights import Weights

        if (folder / "weights.json").exists() and len(Weights.load(folder / "weights.json").models) != 2000:
            return "weights file incomplete"
    elif kind == "submission":
        if (folder / "sub.csv").exists() and len(pd.read_csv(folder / "sub.csv")) != 200_000:
            return "submission incomplete"
        if (folder / "sub.csv.json").exists():
            from ensemble.workflows.submission import sidecar_matches

            json.loads((folder / "sub.csv.json").read_text())
            if not sidecar_matches(folder / "sub.csv"):  # the CSV is written first, its sidecar last
                return "sidecar without the submission it describes"
    elif kind == "report":
        if (folder / "report.html").exists() and not (folder / "report.html").read_text().endswith("</html>"):
            return "report incomplete"
    elif kind == "average":
        from ensemble.io.tensors import SafetensorsFile

        avg = folder / "avg"
        if avg.exists():
            with SafetensorsFile(avg / "model.safetensors") as f:
                if len(f.tensors) != 6:
                    return "average incomplete"
            json.loads((avg / "ensemble_manifest.json").read_text())
            if not (avg / "config.json").is_file() or not (avg / "vocab.txt").is_file():
                return "average folder incomplete"
    return None


@pytest.mark.parametrize("kind", ["cache", "weights", "submission", "report", "average"])
def test_sigkill_during_writes_leaves_no_partial_artifact(kind, tmp_path, capsys):
    if kind == "average":
        _setup_average(tmp_path)
    rng = np.random.default_rng(len(kind))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    partial, existed = [], 0
    for _ in range(TRIALS):
        proc = subprocess.Popen([sys.executable, str(CHILD), kind, str(tmp_path)], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)
        assert proc.stdout.readline().strip() == "ready", proc.stderr.read()
        time.sleep(rng.uniform(0.0, 0.5))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        why = _partial(kind, tmp_path)
        existed += why is None and any(tmp_path.iterdir())
        if why:
            partial.append(why)
    assert partial == []
    with capsys.disabled():
        print(f"\n{kind}: {TRIALS} SIGKILL trials, {len(partial)} partial artifacts found")
    # and the next run completes normally
    done = subprocess.Popen([sys.executable, str(CHILD), kind, str(tmp_path)], stdout=subprocess.PIPE, text=True,
                            env=env, cwd=ROOT)
    assert done.stdout.readline().strip() == "ready"
    time.sleep(1.5)
    done.send_signal(signal.SIGKILL)
    done.wait()
    assert _partial(kind, tmp_path) is None


def test_ctrl_c_is_one_line_and_removes_temporary_files(tmp_path):
    """Ctrl-C during an average: exit 130, one line, no temporary file left."""
    _setup_average(tmp_path, rows=8192)  # 200 MB per checkpoint: the average takes about 0.4 s after start-up
    if not _interrupted(tmp_path):
        pytest.skip("the average finished before every interrupt")


def _interrupted(tmp_path) -> bool:
    """Whether an interrupt of ``avg-ckpt`` on ``tmp_path``'s checkpoints landed (and was clean)
    at one of a few delays after its temporary folder appeared; False when every try finished first."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "ensemble", "avg-ckpt", str(tmp_path / "ck1"), str(tmp_path / "ck2"),
           "--tokenizer", str(tmp_path / "tok"), "--out", str(tmp_path / "avg")]
    for delay in (0.0, 0.05, 0.1, 0.2, 0.0):
        # SIGINT as a terminal delivers it: a suite started in the background (``cmd &``) ignores
        # SIGINT, and a child that inherits that never sees the interrupt
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        # interrupt once the average is being written (its temporary folder exists), however long
        # the start-up takes on this machine, after a short delay that varies between tries
        deadline = time.monotonic() + 120
        while not list(tmp_path.glob(".avg.tmp-*")) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
        time.sleep(delay)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
        if proc.returncode == 0:  # finished before the signal: try again with the next delay
            shutil.rmtree(tmp_path / "avg")
            continue
        if "Traceback" in err and "ensemble/averaging/" not in err and "ensemble/cli/" not in err:
            continue  # interrupted while Python was still importing, before ensemble started
        assert proc.returncode == 130, err
        assert err.strip() == "interrupted; temporary files were removed" and "Traceback" not in err
        assert not (tmp_path / "avg").exists()
        assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".avg")] in ([], [".avg.lock"])
        return True
    return False
