"""`ensemble avg-ckpt` from the command line: output, exit codes and one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file, save_file

from ensemble.cli.main import main
from tests.conftest import DROP, edit_config


def _ckpts(run: Path) -> list[Path]:
    return sorted(run.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))


def _edit_weights(ck: Path, fn):
    sd = load_file(ck / "model.safetensors")
    fn(sd)
    save_file(sd, ck / "model.safetensors", {"format": "pt"})


def _no_tokenizer(run: Path):
    for ck in _ckpts(run):
        for f in ("tokenizer.json", "tokenizer_config.json", "vocab.txt"):
            (ck / f).unlink(missing_ok=True)
        edit_config(ck, _name_or_path=DROP)  # 4.x keeps the base model's path here


# Each case: how to break a copy of the `tok` run, extra CLI args, and what the error names.
CASES = {
    "no_checkpoints": (lambda run: [p.rename(run / f"old-{p.name}") for p in _ckpts(run)], [],
                       "no checkpoint-N folders"),
    "no_trainer_state": (lambda run: [(p / "trainer_state.json").unlink() for p in _ckpts(run)], [],
                         "no checkpoint holds a trainer_state.json"),
    "metric_typo": (lambda run: None, ["--metric", "acuracy"], "metric eval_acuracy is not logged"),
    "k_too_large": (lambda run: None, ["--k", "50"], "k=50 but only 6 checkpoint(s)"),
    "keys_differ": (lambda run: _edit_weights(_ckpts(run)[-1], lambda sd: sd.pop("classifier.bias")), [],
                    "has tensor 'classifier.bias' that"),
    "shapes_differ": (lambda run: _edit_weights(_ckpts(run)[-1], lambda sd: sd.update(
        {"classifier.bias": torch.zeros(5)})), [], "tensor 'classifier.bias' is F32["),
    "dtypes_differ": (lambda run: _edit_weights(_ckpts(run)[-1], lambda sd: sd.update(
        {"classifier.bias": sd["classifier.bias"].half()})), [], "tensor 'classifier.bias' is F"),
    "architectures_differ": (lambda run: edit_config(_ckpts(run)[-1], architectures=["BertForMaskedLM"]), [],
                             "architectures is ['Bert"),
    "labels_differ": (lambda run: edit_config(_ckpts(run)[-1], id2label={"0": "a", "1": "b", "2": "c"}), [],
                      "id2label is"),
    "truncated_weights": (lambda run: (_ckpts(run)[-1] / "model.safetensors").write_bytes(
        (_ckpts(run)[-1] / "model.safetensors").read_bytes()[:5000]), [], "truncated or corrupt safetensors"),
    "missing_weights": (lambda run: (_ckpts(run)[-1] / "model.safetensors").unlink(), [],
                        "no model.safetensors, sharded index or pytorch_model.bin"),
    "missing_config": (lambda run: (_ckpts(run)[-1] / "config.json").unlink(), [], "config.json: not found"),
    "no_tokenizer": (_no_tokenizer, [], "pass --tokenizer"),
    "bad_tokenizer_flag": (lambda run: None, ["--tokenizer", "/nonexistent/tok"], "no tokenizer files"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_is_one_line_exit_1_and_nothing_left(case, runs, copy_run, tmp_path):
    breaker, args, expected = CASES[case]
    run = copy_run(runs.tok, "run")
    # The best-ranked checkpoints must include the broken one: average them all.
    k = [] if "--k" in args else ["--k", str(len(_ckpts(run)))]
    breaker(run)
    out = tmp_path / "out" / "avg"
    result = CliRunner().invoke(main, ["avg-ckpt", str(run), "--out", str(out), *k, *args])
    assert result.exit_code == 1, result.output
    error_lines = result.stderr.strip().splitlines()
    assert len(error_lines) == 1 and error_lines[0].startswith("error: "), result.stderr
    assert expected in error_lines[0], result.stderr
    assert "Traceback" not in result.stderr
    assert str(run) in error_lines[0] or "/nonexistent/tok" in error_lines[0]
    leftovers = [p.name for p in out.parent.iterdir() if not p.name.endswith(".lock")] if out.parent.exists() else []
    assert leftovers == []


def test_existing_output_is_refused_then_replaced_with_force(runs, tmp_path):
    out = tmp_path / "avg"
    runner = CliRunner()
    ok = runner.invoke(main, ["avg-ckpt", str(runs.tok), "--k", "2", "--out", str(out), "-q"])
    assert ok.exit_code == 0 and ok.stdout.strip() == str(out)
    again = runner.invoke(main, ["avg-ckpt", str(runs.tok), "--k", "3", "--out", str(out)])
    assert again.exit_code == 1 and "already exists (it was averaged with other settings); pass --force" in again.stderr
    assert json.loads((out / "ensemble_manifest.json").read_text())["k"] == 2
    forced = runner.invoke(main, ["avg-ckpt", str(runs.tok), "--k", "3", "--out", str(out), "--force"])
    assert forced.exit_code == 0
    assert json.loads((out / "ensemble_manifest.json").read_text())["k"] == 3


def test_prints_the_ranked_table(runs, tmp_path):
    result = CliRunner().invoke(main, ["avg-ckpt", str(runs.tok), "--k", "2", "--out", str(tmp_path / "a")])
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    header = next(i for i, ln in enumerate(lines) if ln.startswith("rank"))
    assert "eval_accuracy (higher is better, from the metric's name)" in lines[header]
    chosen = [ln.split()[1] for ln in lines[header + 1:] if ln.rstrip().endswith("yes")]
    manifest = json.loads((tmp_path / "a" / "ensemble_manifest.json").read_text())
    assert chosen == [f"checkpoint-{c['step']}" for c in manifest["checkpoints"]]


def test_usage_error_exits_2(runs):
    result = CliRunner().invoke(main, ["avg-ckpt", str(runs.tok), "--k", "0"])
    assert result.exit_code == 2


def test_python_dash_m_and_verbose_traceback(runs, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    ok = subprocess.run([sys.executable, "-m", "ensemble", "avg-ckpt", str(runs.tok), "--k", "2",
                         "--out", str(tmp_path / "a"), "-q"], capture_output=True, text=True, env=env)
    assert ok.returncode == 0, ok.stderr
    assert (tmp_path / "a" / "model.safetensors").is_file() and ok.stdout.strip() == str(tmp_path / "a")
    bad = subprocess.run([sys.executable, "-m", "ensemble", "avg-ckpt", str(tmp_path / "missing"), "-v"],
                         capture_output=True, text=True, env=env)
    assert bad.returncode == 1 and "Traceback" in bad.stderr and bad.stderr.strip().splitlines()[-1].startswith("error:")


def test_a_full_disk_names_the_file_being_written(runs, tmp_path, monkeypatch):
    """ENOSPC while the average is written names the destination, not the checkpoint read."""
    import errno
    import io

    import ensemble.averaging.build as averaging
    from ensemble.io.tensors import SafetensorsWriter

    def full(self, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    class Full(io.RawIOBase):
        write = full

    real_init = SafetensorsWriter.__init__

    def init(self, *args, **kwargs):
        real_init(self, *args, **kwargs)
        self._f.close()
        self._f = Full()

    monkeypatch.setattr(SafetensorsWriter, "__init__", init)
    out = tmp_path / "avg"
    result = CliRunner().invoke(main, ["avg-ckpt", str(runs.tok), "--k", "2", "--out", str(out)])
    assert result.exit_code == 1
    line = result.stderr.strip()
    assert line.startswith("error: ") and "model.safetensors: No space left on device; free some disk space" in line
    assert f"{tmp_path}/.avg.tmp-" in line and str(runs.tok) not in line
    assert not out.exists() and not list(tmp_path.glob(".avg.tmp-*"))

    # a copy (config, tokenizer) that fails names its destination, which Python gives second
    monkeypatch.setattr(SafetensorsWriter, "__init__", real_init)

    def copyfile(src, dst, *a, **k):
        raise OSError(errno.ENOSPC, "No space left on device", str(src), None, str(dst))

    monkeypatch.setattr(averaging.shutil, "copyfile", copyfile)
    result = CliRunner().invoke(main, ["avg-ckpt", str(runs.tok), "--k", "2", "--out", str(out)])
    assert result.exit_code == 1 and "/config.json: No space left on device" in result.stderr
    assert f"{tmp_path}/.avg.tmp-" in result.stderr and str(runs.tok) not in result.stderr
