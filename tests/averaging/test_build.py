"""average_checkpoints against independent references, on real Trainer checkpoints."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from blake3 import blake3
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from ensemble.averaging.build import average_checkpoints
from ensemble.averaging.checkpoints import rank_run
from ensemble.averaging.manifest import MANIFEST_NAME, manifest_path
from ensemble.averaging.selection import select_checkpoints
from ensemble.core.errors import EnsembleError
from tests.conftest import DROP, edit_config


def _load_model(folder):
    import transformers
    from transformers import AutoModelForSequenceClassification

    # transformers 5 names it dtype (and defaults to "auto"); 4.x names it torch_dtype.
    key = "dtype" if int(transformers.__version__.split(".")[0]) >= 5 else "torch_dtype"
    return AutoModelForSequenceClassification.from_pretrained(folder, **{key: torch.float32}).eval()


def _swa_reference(folders):
    """torch.optim.swa_utils.AveragedModel over the checkpoints, in checkpoint order."""
    from torch.optim.swa_utils import AveragedModel

    swa = None
    for f in folders:
        m = _load_model(f)
        if swa is None:
            swa = AveragedModel(m)  # a copy; construction does not count as an update
        swa.update_parameters(m)
    return {k.removeprefix("module."): v for k, v in swa.state_dict().items() if k != "n_averaged"}


def test_top_k_average_matches_swa_and_float64_mean(runs, tmp_path):
    ranking = rank_run(runs.tok)
    chosen = [c.path for c in ranking.top(3)]
    out = average_checkpoints(runs.tok, k=3, out=tmp_path / "avg", progress=False)

    got = load_file(out / "model.safetensors")
    ref = _swa_reference(chosen)
    mean64 = {k: torch.stack([load_file(f / "model.safetensors")[k].double() for f in chosen]).mean(0)
              for k in got}
    assert set(got) == set(load_file(chosen[0] / "model.safetensors"))
    for name, t in got.items():
        assert t.dtype == torch.float32
        torch.testing.assert_close(t, ref[name].float(), atol=1e-6, rtol=0, msg=name)
        torch.testing.assert_close(t.double(), mean64[name], atol=1e-6, rtol=0, msg=name)
    # The average differs from every single checkpoint: the test would catch a plain copy.
    assert all(not torch.equal(got["classifier.weight"], load_file(f / "model.safetensors")["classifier.weight"])
               for f in chosen)


def test_output_loads_and_logits_match_reference_forward(runs, tmp_path):
    from transformers import AutoTokenizer

    out = average_checkpoints(runs.tok, k=4, out=tmp_path / "avg", progress=False)
    chosen = [c.path for c in rank_run(runs.tok).top(4)]
    model = _load_model(out)
    tok = AutoTokenizer.from_pretrained(out)
    reference = _load_model(chosen[0])
    reference.load_state_dict(_swa_reference(chosen))
    batch = tok(runs.valid_texts[:16], padding=True, truncation=True, max_length=64, return_tensors="pt")
    with torch.inference_mode():
        torch.testing.assert_close(model(**batch).logits, reference(**batch).logits, atol=1e-5, rtol=0)
    assert model.config.id2label == reference.config.id2label


def test_float64_accumulation_matches_float32_within_tolerance(runs, tmp_path):
    a = average_checkpoints(runs.tok, k=4, out=tmp_path / "a", progress=False)
    b = average_checkpoints(runs.tok, k=4, out=tmp_path / "b", accumulate_dtype="float64", progress=False)
    ta, tb = load_file(a / "model.safetensors"), load_file(b / "model.safetensors")
    for k in ta:
        torch.testing.assert_close(ta[k], tb[k], atol=1e-6, rtol=0)
    assert json.loads((b / MANIFEST_NAME).read_text())["accumulate_dtype"] == "float64"


def test_manifest_records_selection_hashes_and_is_in_the_header(runs, tmp_path):
    out = average_checkpoints(runs.tok, k=2, out=tmp_path / "avg", progress=False)
    manifest = json.loads((out / MANIFEST_NAME).read_text())
    ranking = rank_run(runs.tok)
    assert manifest["k"] == 2 and manifest["metric"] == "eval_accuracy" and manifest["greater_is_better"]
    assert [c["step"] for c in manifest["checkpoints"]] == [c.step for c in ranking.top(2)]
    for entry, ckpt in zip(manifest["checkpoints"], ranking.top(2)):
        assert entry["metric_value"] == ckpt.metrics["eval_accuracy"]
        f = entry["files"][0]
        assert f["blake3"] == blake3((ckpt.path / f["name"]).read_bytes()).hexdigest()
    assert sum(c["chosen"] for c in manifest["candidates"]) == 2
    assert manifest["selected_on_eval_set"] is True
    with safe_open(out / "model.safetensors", "np") as f:
        outputs = manifest.pop("outputs")  # known only once the weights are written: the JSON file alone
        assert manifest.pop("created_utc")  # the JSON file alone: the weights' bytes do not depend on the time
        assert json.loads(f.metadata()["ensemble_manifest"]) == manifest
        assert f.metadata()["format"] == "pt"
    from ensemble.io.hashing import file_digest

    assert outputs == {"model.safetensors": file_digest(out / "model.safetensors")}


def test_bf16_checkpoints_are_averaged_in_float32_and_written_in_bf16(runs, copy_run, tmp_path):
    run = copy_run(runs.tok)
    for ck in run.glob("checkpoint-*"):
        sd = load_file(ck / "model.safetensors")
        save_file({k: v.to(torch.bfloat16) for k, v in sd.items()}, ck / "model.safetensors", {"format": "pt"})
    chosen = [c.path for c in rank_run(run).top(3)]
    out = average_checkpoints(run, k=3, out=tmp_path / "avg", progress=False)
    got = load_file(out / "model.safetensors")
    for k, t in got.items():
        assert t.dtype == torch.bfloat16
        expect = (sum(load_file(f / "model.safetensors")[k].float() for f in chosen) / 3).to(torch.bfloat16)
        assert torch.equal(t, expect), k


def _add_position_ids(folder: Path, values: torch.Tensor) -> None:
    sd = load_file(folder / "model.safetensors")
    sd["bert.embeddings.position_ids"] = values
    save_file(sd, folder / "model.safetensors", {"format": "pt"})


def test_integer_buffers_are_copied_not_averaged(runs, copy_run, tmp_path):
    run = copy_run(runs.tok)
    pos = torch.arange(128, dtype=torch.int64).unsqueeze(0)
    for ck in run.glob("checkpoint-*"):
        _add_position_ids(ck, pos)
    out = average_checkpoints(run, k=3, out=tmp_path / "avg", progress=False)
    got = load_file(out / "model.safetensors")["bert.embeddings.position_ids"]
    assert got.dtype == torch.int64 and torch.equal(got, pos)
    # A 4.x-style checkpoint with the buffer still loads.
    assert _load_model(out).config.num_labels == 3


def test_integer_buffers_that_differ_are_an_error_naming_the_tensor(runs, copy_run, tmp_path):
    run = copy_run(runs.tok)
    for i, ck in enumerate(sorted(run.glob("checkpoint-*"))):
        _add_position_ids(ck, torch.arange(128, dtype=torch.int64).unsqueeze(0) + i)
    with pytest.raises(EnsembleError, match="bert.embeddings.position_ids"):
        average_checkpoints(run, k=3, out=tmp_path / "avg", progress=False)
    assert not (tmp_path / "avg").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".avg.tmp")] == []


def test_sharded_checkpoints_are_written_back_sharded(runs, copy_run, tmp_path):
    run = copy_run(runs.tok)
    for ck in run.glob("checkpoint-*"):
        model = _load_model(ck)
        (ck / "model.safetensors").unlink()
        model.save_pretrained(ck, max_shard_size="60KB")
        assert (ck / "model.safetensors.index.json").is_file()
    out = average_checkpoints(run, k=3, out=tmp_path / "avg", progress=False)
    index = json.loads((out / "model.safetensors.index.json").read_text())
    shards = sorted(set(index["weight_map"].values()))
    assert len(shards) > 1 and all((out / s).is_file() for s in shards)
    single = average_checkpoints(runs.tok, k=3, out=tmp_path / "single", progress=False)
    ref = load_file(single / "model.safetensors")
    got = {}
    for s in shards:
        got.update(load_file(out / s))
    assert set(got) == set(ref)
    for k in ref:
        torch.testing.assert_close(got[k], ref[k], atol=1e-7, rtol=0)
    manifest = json.loads((out / MANIFEST_NAME).read_text())
    assert len(manifest["checkpoints"][0]["files"]) == len(shards)
    assert _load_model(out).num_labels == 3


def test_legacy_pytorch_model_bin_is_read_with_weights_only(runs, copy_run, tmp_path):
    run = copy_run(runs.tok)
    for ck in run.glob("checkpoint-*"):
        sd = load_file(ck / "model.safetensors")
        torch.save(sd, ck / "pytorch_model.bin")
        (ck / "model.safetensors").unlink()
    out = average_checkpoints(run, k=3, out=tmp_path / "avg", progress=False)
    ref = load_file(average_checkpoints(runs.tok, k=3, out=tmp_path / "ref", progress=False) / "model.safetensors")
    got = load_file(out / "model.safetensors")
    for k in ref:
        torch.testing.assert_close(got[k], ref[k], atol=1e-7, rtol=0)
    for entry in json.loads((out / MANIFEST_NAME).read_text())["checkpoints"]:
        f = entry["files"][0]
        assert f["name"] == "pytorch_model.bin"
        assert f["blake3"] == blake3((manifest_path(out, entry["path"]) / f["name"]).read_bytes()).hexdigest()


def test_tied_weights_in_a_legacy_bin_stay_equal(tmp_path):
    """A 4.x .bin state dict saves tied tensors under both names; both keep equal values."""
    from transformers import BertConfig, BertForMaskedLM

    from ensemble.cli.example import make_tokenizer, write_vocab

    vocab = write_vocab(["가나다라마바사"], tmp_path / "tok" / "vocab.txt")
    make_tokenizer(vocab).save_pretrained(tmp_path / "tok")
    cfg = BertConfig(vocab_size=len(vocab.read_text().splitlines()), hidden_size=16, num_hidden_layers=1,
                     num_attention_heads=2, intermediate_size=32, tie_word_embeddings=True)
    folders = []
    for i in range(2):
        torch.manual_seed(i)
        m = BertForMaskedLM(cfg)
        ck = tmp_path / "run" / f"checkpoint-{i + 1}"
        ck.mkdir(parents=True)
        cfg.save_pretrained(ck)
        sd = m.state_dict()
        assert sd["cls.predictions.decoder.weight"].data_ptr() == sd["bert.embeddings.word_embeddings.weight"].data_ptr()
        torch.save(sd, ck / "pytorch_model.bin")
        folders.append(ck)
    out = average_checkpoints(folders, out=tmp_path / "avg", tokenizer=tmp_path / "tok", progress=False)
    got = load_file(out / "model.safetensors")
    assert torch.equal(got["cls.predictions.decoder.weight"], got["bert.embeddings.word_embeddings.weight"])
    model = BertForMaskedLM.from_pretrained(out)
    assert model.cls.predictions.decoder.weight.data_ptr() == model.bert.embeddings.word_embeddings.weight.data_ptr()


def test_explicit_checkpoint_folders(runs, tmp_path):
    folders = sorted(runs.tok.glob("checkpoint-*"))[:2]
    out = average_checkpoints([str(f) for f in folders], out=tmp_path / "avg", progress=False)
    got = load_file(out / "model.safetensors")
    ref = _swa_reference(folders)
    for k in got:
        torch.testing.assert_close(got[k], ref[k].float(), atol=1e-6, rtol=0)
    # With k, the best k of the listed folders by their own trainer_state.json.
    sel = select_checkpoints(sorted(runs.tok.glob("checkpoint-*")), k=2)
    assert [c.step for c in sel.chosen] == [c.step for c in rank_run(runs.tok).top(2)]


def test_tokenizer_from_run_folder_base_model_or_flag(runs, copy_run, tmp_path):
    from transformers import AutoTokenizer

    run = copy_run(runs.notok)
    assert not any((ck / "tokenizer_config.json").exists() for ck in run.glob("checkpoint-*"))

    def set_base(value):  # transformers 4.x records the base model's path, 5.x does not
        for ck in run.glob("checkpoint-*"):
            edit_config(ck, _name_or_path=DROP if value is None else value)

    set_base(None)
    with pytest.raises(EnsembleError, match="pass tokenizer=<base model folder>"):
        average_checkpoints(run, k=2, out=tmp_path / "a", progress=False)
    assert not (tmp_path / "a").exists()
    set_base(str(runs.base))  # a local base-model folder named by the config is used
    out = average_checkpoints(run, k=2, out=tmp_path / "from-config", progress=False)
    assert manifest_path(out, json.loads((out / MANIFEST_NAME).read_text())["tokenizer_from"]) == runs.base.resolve()
    set_base("klue/roberta-large")  # a hub name is not a folder: ignored
    with pytest.raises(EnsembleError, match="pass tokenizer=<base model folder>"):
        average_checkpoints(run, k=2, out=tmp_path / "a", progress=False)
    out = average_checkpoints(run, k=2, out=tmp_path / "b", tokenizer=runs.base, progress=False)
    base_tok = AutoTokenizer.from_pretrained(runs.base)
    assert AutoTokenizer.from_pretrained(out)(runs.valid_texts[:4])["input_ids"] == base_tok(runs.valid_texts[:4])["input_ids"]
    # Tokenizer files saved in the run folder are found there.
    base_tok.save_pretrained(run)
    out = average_checkpoints(run, k=2, out=tmp_path / "c", progress=False)
    assert (out / "tokenizer_config.json").is_file()
    assert manifest_path(out, json.loads((out / MANIFEST_NAME).read_text())["tokenizer_from"]) == run.resolve()


def test_refuses_to_overwrite_without_force(runs, tmp_path):
    out = average_checkpoints(runs.tok, k=2, out=tmp_path / "avg", progress=False)
    before = (out / "model.safetensors").read_bytes()
    # the library names the keyword argument, not the CLI flag, and says why the folder differs
    with pytest.raises(EnsembleError, match=r"avg: already exists \(it was averaged with other settings\); pass "
                                            r"force=True to replace it or pass out=\.\.\. for another folder$"):
        average_checkpoints(runs.tok, k=3, out=out, progress=False)
    assert (out / "model.safetensors").read_bytes() == before
    average_checkpoints(runs.tok, k=3, out=out, force=True, progress=False)
    assert json.loads((out / MANIFEST_NAME).read_text())["k"] == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["avg"]  # no lock file either


def test_rerunning_the_same_average_returns_the_folder(runs, copy_run, tmp_path, caplog):
    """A notebook cell run twice: the folder built from the same checkpoints with the same
    settings is up to date and returned as it is; a changed checkpoint is refused by name."""
    run = copy_run(runs.tok)
    out = average_checkpoints(run, k=3, out=tmp_path / "avg", progress=False)
    mtime = (out / "model.safetensors").stat().st_mtime_ns
    with caplog.at_level("INFO", logger="ensemble"):
        again = average_checkpoints(run, k=3, out=tmp_path / "avg", progress=False)
    assert again == out and (out / "model.safetensors").stat().st_mtime_ns == mtime
    assert "up to date" in caplog.text
    # same checkpoints, but one's weights changed in place: not up to date, and named
    best = rank_run(run).top(1)[0].path
    data = bytearray((best / "model.safetensors").read_bytes())
    data[-1] ^= 1
    (best / "model.safetensors").write_bytes(bytes(data))
    with pytest.raises(EnsembleError, match=r"model.safetensors changed since it was averaged\); pass force=True"):
        average_checkpoints(run, k=3, out=out, progress=False)


def test_average_bytes_do_not_depend_on_time_or_place(runs, tmp_path):
    """The same checkpoints averaged twice, from a run at two places, give the same bytes: the
    manifest's paths are relative to the output and its time is in the JSON file alone, so a
    copied or moved project keeps its cache keys."""
    a = tmp_path / "a"
    b = tmp_path / "deeper" / "b"
    for root in (a, b):
        shutil.copytree(runs.tok, root / "runs" / "tok")
        average_checkpoints(root / "runs" / "tok", k=2, out=root / "weights" / "tok-top2", progress=False)
    assert ((a / "weights" / "tok-top2" / "model.safetensors").read_bytes()
            == (b / "weights" / "tok-top2" / "model.safetensors").read_bytes())
    manifest = json.loads((b / "weights" / "tok-top2" / MANIFEST_NAME).read_text())
    assert manifest["checkpoints"][0]["path"].startswith("../../runs/tok/checkpoint-")


def test_default_output_folder_is_weights_run_top_k(runs, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = average_checkpoints(runs.tok, progress=False)
    assert out == Path("weights") / "tok-top4" and (tmp_path / out / "model.safetensors").is_file()


class _Payload:
    """Unpickling it creates ``marker``: proof that code ran."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_never_touches_training_pickles(runs, copy_run, tmp_path):
    """optimizer.pt, scheduler.pt, rng_state.pth and training_args.bin are never loaded."""
    import pickle

    run = copy_run(runs.tok)
    marker = tmp_path / "pwned"
    for ck in run.glob("checkpoint-*"):
        for name in ("optimizer.pt", "scheduler.pt", "rng_state.pth", "training_args.bin"):
            (ck / name).write_bytes(pickle.dumps(_Payload(marker)))
    average_checkpoints(run, k=4, out=tmp_path / "avg", progress=False)
    assert not marker.exists()


def test_hostile_pytorch_model_bin_is_refused_without_running_code(runs, copy_run, tmp_path):
    run = copy_run(runs.tok)
    marker = tmp_path / "pwned"
    ck = sorted(run.glob("checkpoint-*"))[0]
    (ck / "model.safetensors").unlink()
    torch.save({"w": _Payload(marker)}, ck / "pytorch_model.bin")
    with pytest.raises(EnsembleError, match="safetensors"):
        average_checkpoints([ck, sorted(run.glob("checkpoint-*"))[1]], out=tmp_path / "avg", progress=False)
    assert not marker.exists() and not (tmp_path / "avg").exists()


def test_bf16_rounding_matches_torch():
    from ensemble.io.tensors import from_float, to_float

    rng = np.random.default_rng(0)
    x = np.concatenate([rng.standard_normal(10000).astype(np.float32) * 10,
                        np.array([0, -0.0, np.inf, -np.inf, np.nan, 1e-40, 3.4e38, -3.4e38], np.float32),
                        rng.integers(0, 2**32, 5000, dtype=np.uint64).astype(np.uint32).view(np.float32)])
    ours = from_float(x, "BF16")
    theirs = torch.from_numpy(x.copy()).to(torch.bfloat16).view(torch.uint16).numpy()
    finite = ~np.isnan(x)
    assert np.array_equal(ours[finite], theirs[finite])
    assert np.isnan(to_float(ours[~finite], "BF16", np.float32)).all()
    back = to_float(theirs, "BF16", np.float32)
    assert np.array_equal(back[finite], torch.from_numpy(theirs.view(np.int16)).view(torch.bfloat16).float().numpy()[finite])


def test_leftovers_of_killed_averages_are_removed_by_the_next_average_and_prune(runs, tmp_path):
    """A SIGKILL during avg-ckpt --force leaves .NAME.tmp-* (and .NAME.old-*) folders; the next
    average of that output removes them, cache prune removes any, and one whose writer still
    holds the lock is kept."""
    from click.testing import CliRunner

    from ensemble.cli.main import main
    from ensemble.io.atomic import output_lock

    weights = tmp_path / "weights"
    out = average_checkpoints(runs.tok, k=2, out=weights / "avg", progress=False)
    for name in (".avg.tmp-0123abcd", ".avg.old-89abcdef", ".other.tmp-00000000", ".busy.tmp-11111111"):
        (weights / name).mkdir()
        (weights / name / "model.safetensors").write_bytes(b"x" * 1000)
    average_checkpoints(runs.tok, k=2, out=out, progress=False)  # up to date, and cleans its own leftovers
    assert sorted(p.name for p in weights.iterdir()) == [".busy.tmp-11111111", ".other.tmp-00000000", "avg"]
    (weights / ".avg.tmp-4567cdef").mkdir()  # a rebuild, under the output's own lock, cleans them too
    average_checkpoints(runs.tok, k=2, out=out, force=True, progress=False)
    assert sorted(p.name for p in weights.iterdir()) == [".busy.tmp-11111111", ".other.tmp-00000000", "avg"]
    with output_lock(weights / "busy"):  # a live writer of weights/busy
        result = CliRunner().invoke(main, ["cache", "prune", "--model", f"avg={out}", "--data",
                                           f"valid={_valid_csv(runs, tmp_path)}", "--cache-dir", str(tmp_path / "c")])
    assert result.exit_code == 0, result.output
    assert "removed " + str(weights / ".other.tmp-00000000") in result.stdout
    assert sorted(p.name for p in weights.iterdir()) == [".busy.tmp-11111111", "avg"]


def _valid_csv(runs, tmp_path):
    import pandas as pd

    path = tmp_path / "valid.csv"
    pd.DataFrame({"id": range(len(runs.valid_texts)), "text": runs.valid_texts}).to_csv(path, index=False)
    return path
