"""The backbones and heads users really have: tiny models of every family competitions use,
trained for a few steps with the real ``Trainer``, averaged and predicted, compared with the
model's own forward pass; heads that are not single-label classifiers refused by every command
until the tasks that run them exist."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from ensemble.cli.main import main
from ensemble.inference.cache import OutputCache

from .conftest import DROP, edit_config, load_korean, require
from .zoo import FAMILIES, auto_mapping_restored, has_family, make_zoo_model

# What a checkpoint holds that an average must never carry (pickles, training state).
TRAINING_FILES = ("optimizer.pt", "scheduler.pt", "training_args.bin", "rng_state.pth", "trainer_state.json")


@dataclass(frozen=True)
class Zoo:
    root: Path
    valid: Path
    test: Path
    texts: list
    labels: list

    def run(self, family: str) -> Path:
        return self.root / family / "run"


@pytest.fixture(scope="module")
def zoo(tmp_path_factory) -> Zoo:
    """Every family of :data:`FAMILIES`: a base model, then a Trainer run of 4 steps saved every 2."""
    from ensemble.cli.example import train_run

    root = tmp_path_factory.mktemp("zoo")
    train, valid = load_korean(64, 32)
    labels = sorted(set(train[1]))
    for i, family in enumerate(FAMILIES):
        if not has_family(family):
            continue
        base = make_zoo_model(family, root / family / "base", train[0] + valid[0], labels, seed=i,
                              chat_template=family == "llama")
        train_run(root / family / "run", base, train, valid, epochs=1, batch_size=16, steps=2, seed=i)
    ids = [f"v{i}" for i in range(len(valid[0]))]
    pd.DataFrame({"id": ids, "text": valid[0], "label": valid[1]}).to_csv(root / "valid.csv", index=False)
    pd.DataFrame({"id": ids[:12], "text": valid[0][:12]}).to_csv(root / "test.csv", index=False)
    return Zoo(root, root / "valid.csv", root / "test.csv", list(valid[0]), list(valid[1]))


def _cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def _own_logits(folder: Path, texts, **kw) -> tuple[np.ndarray, str]:
    """The model's own forward pass, one row at a time (no padding), under its default attention."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(folder, **kw).eval()
    tok = AutoTokenizer.from_pretrained(folder, **kw)
    with torch.no_grad():
        rows = [model(**tok(t, return_tensors="pt")).logits[0].numpy() for t in texts]
    return np.stack(rows), model.config._attn_implementation


@pytest.mark.parametrize("family", FAMILIES)
def test_every_family_averages_and_predicts_as_its_own_forward_pass(zoo, family, tmp_path):
    import transformers
    from safetensors.numpy import load_file
    from transformers import AutoModelForSequenceClassification

    require(has_family(family), f"transformers {transformers.__version__} has no {family} models")
    run = zoo.run(family)
    avg = tmp_path / "avg"
    result = _cli("avg-ckpt", run, "--k", "2", "--out", avg)
    assert result.exit_code == 0, result.output
    assert not any((avg / n).exists() for n in TRAINING_FILES)
    # the average is the mean of the two checkpoints' tensors, written in their dtype
    a, b = (load_file(run / f"checkpoint-{s}" / "model.safetensors") for s in (2, 4))
    mean = load_file(avg / "model.safetensors")
    assert set(mean) == set(a)
    for name in a:
        assert mean[name].dtype == a[name].dtype
        if a[name].dtype.kind == "f":
            np.testing.assert_allclose(mean[name], (a[name].astype(np.float64) + b[name]) / 2, rtol=1e-6, atol=1e-7)
    # the Auto class of its head loads it as it is: no weight missing
    _, info = AutoModelForSequenceClassification.from_pretrained(avg, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]

    cache = tmp_path / "cache"
    result = _cli("predict", "--model", f"m={avg}", "--data", f"valid={zoo.valid}", "--batch-size", 8,
                  "--cache-dir", cache, "-q")
    assert result.exit_code == 0, result.output
    entry = next(e for e in OutputCache(cache).entries() if e.metadata["split"] == "valid")
    ids = [f"v{i}" for i in range(len(zoo.texts))]
    got = OutputCache(cache).get(entry.key, ids)
    expected, attention = _own_logits(avg, zoo.texts)
    np.testing.assert_allclose(got.values, expected, rtol=1e-4, atol=1e-5)
    # which attention ran is recorded: the model's own default (SDPA where it has it, else eager)
    assert entry.metadata["attention"] == attention
    if family in ("deberta-v2", "mpnet"):  # no SDPA in transformers for these: eager, not a refusal
        assert attention == "eager"


def test_a_decoder_classifier_pools_its_last_real_token_however_padded(zoo, tmp_path):
    """Llama-style classifiers read each row's logits at its last non-pad token: batches padded
    on the right (as predict pads) or on the left give the logits of one row at a time."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from ensemble.workflows.predict import predict_logits

    folder = zoo.run("llama") / "checkpoint-4"
    one = predict_logits(folder, zoo.valid, batch_size=1, cache=False, progress=False)
    many = predict_logits(folder, zoo.valid, batch_size=16, cache=False, progress=False)
    np.testing.assert_allclose(many.values, one.values, rtol=1e-4, atol=1e-5)
    model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    tok = AutoTokenizer.from_pretrained(folder)
    tok.padding_side = "left"
    with torch.no_grad():
        left = model(**tok(zoo.texts[:16], padding=True, return_tensors="pt")).logits.numpy()
    np.testing.assert_allclose(left, one.values[:16], rtol=1e-4, atol=1e-4)
    assert len({len(tok(t)["input_ids"]) for t in zoo.texts[:16]}) > 1  # the rows really were padded


def test_a_decoder_classifier_without_pad_token_id_is_a_clear_error(zoo, tmp_path):
    folder = tmp_path / "m"
    shutil.copytree(zoo.run("llama") / "checkpoint-4", folder)
    edit_config(folder, pad_token_id=DROP)
    result = _cli("predict", "--model", f"m={folder}", "--data", f"valid={zoo.valid}", "--cache-dir", tmp_path / "c")
    assert result.exit_code == 1 and result.stderr.count("\n") == 1, result.output
    assert "no pad_token_id" in result.stderr and "LlamaForSequenceClassification" in result.stderr
    assert "the tokenizer's pad token is 0" in result.stderr
    assert not (tmp_path / "c").exists() or not OutputCache(tmp_path / "c").entries()


def test_chat_templates_and_tokenizer_files_travel_with_the_average(zoo, tmp_path):
    from transformers import AutoTokenizer

    run = zoo.run("llama")
    result = _cli("avg-ckpt", run, "--k", "2", "--out", tmp_path / "avg")
    assert result.exit_code == 0, result.output
    source = AutoTokenizer.from_pretrained(run / "checkpoint-4")
    assert source.chat_template
    if (run / "checkpoint-4" / "chat_template.jinja").is_file():  # transformers 5; 4.x keeps it in tokenizer_config
        assert (tmp_path / "avg" / "chat_template.jinja").is_file()
    assert AutoTokenizer.from_pretrained(tmp_path / "avg").chat_template == source.chat_template


# ---------------------------------------------------------------- heads that are not run yet
def _save(model, tokenizer_from: Path, folder: Path) -> Path:
    """``model`` saved as a fine-tuned folder: its config and weights, the tokenizer of
    ``tokenizer_from`` and a trainer_state.json (as a Trainer checkpoint has)."""
    model.save_pretrained(folder)
    for p in tokenizer_from.iterdir():
        if p.name in ("vocab.txt", "tokenizer_config.json", "tokenizer.json", "special_tokens_map.json"):
            shutil.copyfile(p, folder / p.name)
    (folder / "trainer_state.json").write_text(json.dumps({"log_history": [], "global_step": 4}))
    return folder


def _bert_config(zoo: Zoo, **kw):
    from transformers import AutoConfig

    return AutoConfig.from_pretrained(zoo.run("bert") / "checkpoint-4", **kw)


def _head(kind: str, zoo: Zoo, folder: Path) -> Path:
    """A model folder of head ``kind`` built from a tiny config (weights random: what is refused is
    the head, before any weight is read)."""
    import torch
    import transformers as t

    torch.manual_seed(0)
    tok = zoo.run("bert") / "checkpoint-4"
    if kind == "regression":
        cfg = _bert_config(zoo, problem_type=None)
        cfg.id2label, cfg.label2id = {0: "LABEL_0"}, {"LABEL_0": 0}  # num_labels=1, as a regressor's config says
        return _save(t.BertForSequenceClassification(cfg), tok, folder)
    if kind == "multi-target regression":
        labels = {0: "cohesion", 1: "syntax", 2: "grammar"}
        cfg = _bert_config(zoo, problem_type="regression")
        cfg.id2label, cfg.label2id = labels, {v: k for k, v in labels.items()}
        return _save(t.BertForSequenceClassification(cfg), tok, folder)
    if kind == "multi-label":
        return _save(t.BertForSequenceClassification(_bert_config(zoo, problem_type="multi_label_classification")),
                     tok, folder)
    if kind == "token classification":  # ModernBERT: the same weight names as its sequence classifier
        make_zoo_model("modernbert" if has_family("modernbert") else "bert", folder, zoo.texts, sorted(set(zoo.labels)), head="token")
        (folder / "trainer_state.json").write_text(json.dumps({"log_history": [], "global_step": 4}))
        return folder
    if kind == "seq2seq":
        cfg = t.BartConfig(vocab_size=200, d_model=16, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2,
                           decoder_attention_heads=2, encoder_ffn_dim=32, decoder_ffn_dim=32, max_position_embeddings=64)
        return _save(t.BartForConditionalGeneration(cfg), tok, folder)
    if kind == "causal lm":
        cfg = t.LlamaConfig(vocab_size=200, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                            intermediate_size=32, max_position_embeddings=64)
        return _save(t.LlamaForCausalLM(cfg), tok, folder)
    if kind == "custom":  # a mean-pooling classifier whose weights have the names of BERT's
        shutil.copytree(zoo.run("bert") / "checkpoint-4", folder)
        edit_config(folder, architectures=["BertMeanPool"])
        return folder
    if kind == "base":
        return _save(t.BertModel(_bert_config(zoo)), tok, folder)
    raise ValueError(kind)


HEADS = {  # kind -> what the one-line refusal says (token classification is the entities task's since issue 35,
    # generation heads the summarization task's since issue 36)
    "custom": "a custom class (BertMeanPool) that AutoModelForSequenceClassification does not build",
    "base": "no task head (BertModel)",
}


@pytest.mark.parametrize("kind", ["seq2seq", "causal lm"])
def test_a_generation_member_beside_a_classifier_is_refused_and_a_foreign_tokenizer_named(zoo, kind, tmp_path):
    """Generation heads are the summarization task's: beside a classifier, vote and report refuse
    members of two tasks in one line; predicted alone with a tokenizer whose ids its embeddings do
    not hold (this zoo's: 200 rows), the error names the tokenizer, never an IndexError."""
    bad = _head(kind, zoo, tmp_path / "bad")
    good = tmp_path / "good"
    shutil.copytree(zoo.run("bert") / "checkpoint-4", good)
    data = ["--data", f"valid={zoo.valid}", "--data", f"test={zoo.test}", "--cache-dir", tmp_path / "cache"]
    for command in ("vote", "report"):
        result = _cli(command, "--model", f"good={good}", "--model", f"bad={bad}", *data)
        assert result.exit_code == 1 and result.stderr.startswith("error: "), (command, result.output)
        assert "members of different tasks: good is classification, bad is summarization" in result.stderr
    result = _cli("predict", "--model", f"bad={bad}", *data)
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    assert "the tokenizer gives token id" in result.stderr and "embeddings hold 200 tokens" in result.stderr
    assert not (tmp_path / "cache").exists() or not OutputCache(tmp_path / "cache").entries()


@pytest.mark.parametrize("kind", HEADS)
def test_heads_that_are_not_single_label_classifiers_are_refused_by_every_command(zoo, kind, tmp_path, monkeypatch):
    """Until the tasks that run them exist (generation), each of
    these is refused in one line naming its head, by predict, vote, report and run alike: read as
    class logits, a regression output would vote a constant and exit 0."""
    bad = _head(kind, zoo, tmp_path / "bad")
    good = tmp_path / "good"
    shutil.copytree(zoo.run("bert") / "checkpoint-4", good)
    cache = tmp_path / "cache"
    data = ["--data", f"valid={zoo.valid}", "--data", f"test={zoo.test}", "--cache-dir", cache]
    assert _cli("predict", "--model", f"good={good}", *data, "-q").exit_code == 0
    entries = len(OutputCache(cache).entries())
    members = ["--model", f"good={good}", "--model", f"bad={bad}"]
    commands = {
        "predict": ["predict", "--model", f"bad={bad}", *data],
        "vote": ["vote", *members, *data, "--out", tmp_path / "sub.csv"],
        "report": ["report", *members, *data, "--html", tmp_path / "report.html"],
    }
    for name, argv in commands.items():
        result = _cli(*argv)
        assert result.exit_code == 1, (name, result.output)
        assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: "), (name, result.stderr)
        assert HEADS[kind] in result.stderr and str(bad / "config.json") in result.stderr, (name, result.stderr)
        assert "Traceback" not in result.output
    project = tmp_path / "project"
    project.mkdir()
    (project / "ensemble.toml").write_text(
        f'[data]\nvalid = "{zoo.valid}"\ntest = "{zoo.test}"\n\n[models]\ngood = "{good}"\nbad = "{bad}"\n')
    monkeypatch.chdir(project)
    result = _cli("run")
    assert result.exit_code == 1 and result.stderr.count("\n") == 1 and HEADS[kind] in result.stderr, result.output
    assert len(OutputCache(cache).entries()) == entries
    assert not (tmp_path / "sub.csv").exists() and not (tmp_path / "report.html").exists()
    assert not list(project.glob("submissions/*")) and not (project / ".ensemble" / "cache").exists() or \
        not OutputCache(project / ".ensemble" / "cache").entries()


def test_an_architecture_the_loader_replaces_is_refused_naming_both(zoo, tmp_path):
    """A config whose class name ends like a sequence classifier but is not the class
    AutoModelForSequenceClassification builds for its model_type: no weight is missing, so only
    the class names tell that its head is not the trained one."""
    folder = tmp_path / "m"
    shutil.copytree(zoo.run("bert") / "checkpoint-4", folder)
    edit_config(folder, architectures=["BertMeanPoolForSequenceClassification"])
    result = _cli("predict", "--model", f"m={folder}", "--data", f"valid={zoo.valid}", "--cache-dir", tmp_path / "c")
    assert result.exit_code == 1 and result.stderr.count("\n") == 1, result.output
    assert "architectures names BertMeanPoolForSequenceClassification but AutoModelForSequenceClassification builds " \
           "BertForSequenceClassification" in result.stderr


# ---------------------------------------------------------------- a regression run's metric
def test_a_regression_run_is_averaged_by_its_lowest_mse(tmp_path):
    """``metric_for_best_model="mse"``: the run's best_metric is the lowest eval_mse, so the top
    checkpoints are the lowest (ranking it higher-is-better averaged the worst); the ranked table
    says where the direction came from. Its average is then refused by predict as a regression
    head, until regression members are run."""
    from .zoo import train_regressor

    train, valid = load_korean(64, 32)
    order = {"none": 0.0, "offensive": 1.0, "hate": 2.0}
    trainer = train_regressor(tmp_path / "reg", train[0], [order[y] for y in train[1]], steps=2, epochs=2)
    state = trainer.state
    mse = {e["step"]: e["eval_mse"] for e in state.log_history if "eval_mse" in e}
    assert len(mse) >= 4 and state.best_metric == min(mse.values())
    run = tmp_path / "reg" / "run"
    result = _cli("avg-ckpt", run, "--k", "2", "--metric", "mse", "--out", tmp_path / "avg")
    assert result.exit_code == 0, result.output
    import transformers

    # transformers 5 records best_global_step: the run says the direction; 4.x: the name (mse) does
    source = "the run's best_metric" if int(transformers.__version__.split(".")[0]) >= 5 else "the metric's name"
    assert f"eval_mse (lower is better, from {source})" in result.stdout
    manifest = json.loads((tmp_path / "avg" / "ensemble_manifest.json").read_text())
    assert [c["step"] for c in manifest["checkpoints"]] == sorted(mse, key=lambda s: (mse[s], -s))[:2]
    assert manifest["greater_is_better"] is False
    # the default metric is the run's own metric_for_best_model, with its direction
    default = _cli("avg-ckpt", run, "--k", "2", "--out", tmp_path / "avg2")
    assert default.exit_code == 0
    # (4.x: eval_mse equals eval_loss at the best step, so which one was metric_for_best_model is ambiguous and
    # the default is eval_loss, lower is better either way)
    assert ("eval_mse (lower is better, from the run's best_metric)" if source != "the metric's name" else
            "(lower is better, from the metric's name)") in default.stdout
    pd.DataFrame({"id": range(4), "text": valid[0][:4]}).to_csv(tmp_path / "test.csv", index=False)
    # the average is a regressor: predicted as one, its single output cached as it is (never a softmax)
    done = _cli("predict", "--model", f"r={tmp_path / 'avg'}", "--data", f"test={tmp_path / 'test.csv'}",
                "--cache-dir", tmp_path / "c")
    assert done.exit_code == 0, done.output
    from ensemble import gather

    al = gather({"r": tmp_path / "avg"}, {"test": tmp_path / "test.csv"}, "test", cache_dir=tmp_path / "c")
    assert al.arrays[0].shape == (4, 1) and np.ptp(al.arrays[0]) > 0


@pytest.mark.parametrize("name, greater", [("mse", False), ("eval_rmse", False), ("eval_mae", False),
                                           ("eval_mape", False), ("eval_ter", False), ("eval_error", False),
                                           ("eval_mean_squared_error", False), ("eval_pearson", True),
                                           ("eval_spearmanr", True), ("eval_rougeLsum", True), ("eval_bleu", True),
                                           ("eval_roc_auc", True), ("eval_macro_f1", True), ("eval_qwk", True),
                                           ("eval_exact_match", True), ("eval_foo", None), ("eval_f1_loss", None)])
def test_metric_names_say_their_direction_or_nothing(name, greater):
    from ensemble.averaging.checkpoints import infer_greater_is_better

    assert infer_greater_is_better(name) is greater


# ---------------------------------------------------------------- files an average must carry
def test_a_seq2seq_average_keeps_its_generation_config(tmp_path):
    """A Seq2SeqTrainer run's checkpoints save generation_config.json (beams, length limits): an
    average without it generates otherwise. The average loads with its Auto class and generates
    as the averaged weights do under the checkpoint's generation config."""
    import torch
    from safetensors.torch import load_file
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer, GenerationConfig

    from .zoo import train_seq2seq

    train, _ = load_korean(48, 8)
    train_seq2seq(tmp_path / "s2s", train[0], [t[:6] for t in train[0]], steps=1, epochs=1)  # every step evaluated
    run = tmp_path / "s2s" / "run"
    result = _cli("avg-ckpt", run, "--k", "2", "--metric", "loss", "--out", tmp_path / "avg")
    assert result.exit_code == 0, result.output
    best = run / "checkpoint-3" if (run / "checkpoint-3").is_dir() else sorted(run.glob("checkpoint-*"))[-1]
    source = GenerationConfig.from_pretrained(best)
    assert source.num_beams == 3 and GenerationConfig.from_pretrained(tmp_path / "avg").to_dict() == source.to_dict()
    model = AutoModelForSeq2SeqLM.from_pretrained(tmp_path / "avg").eval()
    reference = AutoModelForSeq2SeqLM.from_pretrained(best).eval()
    chosen = [run / Path(c["path"]).name for c in json.loads((tmp_path / "avg" / "ensemble_manifest.json").read_text())[
        "checkpoints"]]
    parts = [load_file(c / "model.safetensors") for c in chosen]
    reference.load_state_dict({k: sum(p[k].double() for p in parts).div(len(parts)).float() for k in parts[0]},
                              strict=False)
    tok = AutoTokenizer.from_pretrained(tmp_path / "avg")
    batch = tok(train[0][:8], return_tensors="pt", padding=True, truncation=True, max_length=48,
                return_token_type_ids=False)
    with torch.no_grad():
        got = model.generate(**batch)
        expected = reference.generate(**batch, generation_config=source)
    assert torch.equal(got, expected)
    predicted = _cli("predict", "--model", f"s={tmp_path / 'avg'}", "--data",
                     f"test={_texts_csv(tmp_path, train[0])}", "--cache-dir", tmp_path / "c")
    assert predicted.exit_code == 0, predicted.output  # a summarization member since issue 36
    texts = tok.batch_decode(model.generate(**tok(list(train[0])[:4], return_tensors="pt", padding=True,
                                                  return_token_type_ids=False))[:, :], skip_special_tokens=True)
    cached = OutputCache(tmp_path / "c").entries()
    assert len(cached) == 1 and cached[0].payload == "texts" and texts


def _texts_csv(tmp_path: Path, texts) -> Path:
    path = tmp_path / "texts.csv"
    pd.DataFrame({"id": range(4), "text": list(texts)[:4]}).to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def meanpool(tmp_path_factory, zoo):
    """A Trainer run of a model with its own code (mean pooling; auto_map in config.json)."""
    from ensemble.cli.example import train_run

    from .zoo import make_meanpool_model

    root = tmp_path_factory.mktemp("meanpool")
    train, valid = load_korean(64, 32)
    base = make_meanpool_model(root / "base", train[0] + valid[0], sorted(set(train[1])))
    with auto_mapping_restored():
        train_run(root / "run", base, train, valid, epochs=1, batch_size=16, steps=2, trust_remote_code=True)
    for ck in (root / "run").glob("checkpoint-*"):  # transformers 5 copies the code into each checkpoint, 4.x not
        if not (ck / "modeling_meanpool.py").is_file():
            shutil.copyfile(base / "modeling_meanpool.py", ck / "modeling_meanpool.py")
    assert json.loads((root / "run" / "checkpoint-4" / "config.json").read_text())["auto_map"]
    return root / "run"


@pytest.fixture
def mapping_restored():
    with auto_mapping_restored():
        yield


def test_a_model_with_its_own_code_is_averaged_and_run_only_when_trusted(meanpool, zoo, tmp_path, monkeypatch,
                                                                          mapping_restored):
    from transformers import AutoModelForSequenceClassification

    refused = _cli("avg-ckpt", meanpool, "--k", "2", "--out", tmp_path / "avg")
    assert refused.exit_code == 1 and refused.stderr.count("\n") == 1, refused.output
    assert "auto_map names code shipped with the model (modeling_meanpool)" in refused.stderr
    assert "pass --trust-remote-code" in refused.stderr and not (tmp_path / "avg").exists()
    result = _cli("avg-ckpt", meanpool, "--k", "2", "--trust-remote-code", "--out", tmp_path / "avg")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "avg" / "modeling_meanpool.py").read_text() == (meanpool / "checkpoint-4" /
                                                                        "modeling_meanpool.py").read_text()
    model = AutoModelForSequenceClassification.from_pretrained(tmp_path / "avg", trust_remote_code=True)
    assert type(model).__name__ == "BertMeanPool"

    data = ["--data", f"valid={zoo.valid}", "--cache-dir", tmp_path / "cache"]
    refused = _cli("predict", "--model", f"m={tmp_path / 'avg'}", *data)
    assert refused.exit_code == 1 and refused.stderr.count("\n") == 1, refused.output
    assert "auto_map names the model's own code (modeling_meanpool.BertMeanPool)" in refused.stderr
    assert "pass --trust-remote-code" in refused.stderr
    result = _cli("predict", "--model", f"m={tmp_path / 'avg'}", *data, "--trust-remote-code", "-q")
    assert result.exit_code == 0, result.output
    entry = OutputCache(tmp_path / "cache").entries()[0]
    got = OutputCache(tmp_path / "cache").get(entry.key, [f"v{i}" for i in range(len(zoo.texts))])
    expected, _ = _own_logits(tmp_path / "avg", zoo.texts, trust_remote_code=True)
    np.testing.assert_allclose(got.values, expected, rtol=1e-4, atol=1e-5)

    # the same folder without its code: transformers would load BertForSequenceClassification (no
    # weight missing, a [CLS] pooler never trained); refused, naming the class
    stripped = tmp_path / "stripped"
    shutil.copytree(tmp_path / "avg", stripped)
    (stripped / "modeling_meanpool.py").unlink()
    edit_config(stripped, auto_map=DROP)
    result = _cli("predict", "--model", f"m={stripped}", *data)
    assert result.exit_code == 1 and "a custom class (BertMeanPool) that AutoModelForSequenceClassification does " \
                                     "not build" in result.stderr, result.output

    # ensemble.toml: trust_remote_code per member, or ensemble run --trust-remote-code
    project = tmp_path / "project"
    project.mkdir()
    shutil.copytree(meanpool, project / "runs" / "mp")
    toml = f'[data]\nvalid = "{zoo.valid}"\ntest = "{zoo.test}"\n\n[runs]\nmp = {{ path = "runs/mp", k = 2EXTRA }}\n'
    monkeypatch.chdir(project)
    (project / "ensemble.toml").write_text(toml.replace("EXTRA", ""))
    result = _cli("run", "--weights", "uniform")
    assert result.exit_code == 1 and result.stderr.count("\n") == 1, result.output
    assert "set trust_remote_code = true in its [models] or [runs] entry of" in result.stderr
    assert not (project / "weights").exists() or not any((project / "weights").iterdir())
    result = _cli("run", "--weights", "uniform", "--trust-remote-code")
    assert result.exit_code == 0, result.output
    (project / "ensemble.toml").write_text(toml.replace("EXTRA", ", trust_remote_code = true"))
    result = _cli("run", "--weights", "uniform")
    assert result.exit_code == 0, result.output
    assert "predict: all 2 (model, split) logits up to date" in result.stdout


def test_init_says_each_runs_head_and_leaves_out_what_cannot_run_yet(zoo, tmp_path):
    from ensemble.cli.project import load_project

    for name, arch in (("bert", None), ("ner", "BertForTokenClassification"), ("summarizer", "BartForConditionalGeneration"),
                       ("scorer", "regression"), ("reader", "BertForQuestionAnswering")):
        run = tmp_path / "runs" / name
        shutil.copytree(zoo.run("bert"), run)
        for ck in run.glob("checkpoint-*"):
            if arch == "regression":
                edit_config(ck, problem_type="regression")
            elif arch:
                edit_config(ck, architectures=[arch])
    result = _cli("init", tmp_path)
    assert result.exit_code == 0, result.output
    text = (tmp_path / "ensemble.toml").read_text()
    assert 'bert = { path = "runs/bert", k = 4 }   # head: single-label classification\n' in text
    assert 'ner = { path = "runs/ner", k = 4 }   # head: token classification\n' in text  # served since issue 35
    assert 'summarizer = { path = "runs/summarizer", k = 4 }   # head: sequence-to-sequence generation\n' in text
    assert '# reader = { path = "runs/reader", k = 4 }   # left out: a question answering head ' \
           '(BertForQuestionAnswering); ensemble runs classification, regression, multi-label, entities and ' \
           'summarization heads' in text
    assert 'scorer = { path = "runs/scorer", k = 4 }   # head: regression' in text  # served since issue 28
    assert '# task = "classification"   # the members\' heads say classification, entities, regression, ' \
           'summarization' in text
    assert set(load_project(tmp_path / "ensemble.toml").runs) == {"bert", "ner", "scorer", "summarizer"}
