"""The CLI's shared options (data, inference, columns, folds, adjust) and the inputs they describe."""

from __future__ import annotations

import logging

import click

from ensemble.core.errors import NAME_RULE, EnsembleError, is_name, project_messages
from ensemble.core.options import allowed
from ensemble.tasks import TASK_CHOICES

log = logging.getLogger("ensemble")




class KType(click.ParamType):
    """--k: a positive integer, 'auto', or a comma-separated list of them."""

    name = "k"

    def convert(self, value, param, ctx):
        from ensemble.averaging.selection import parse_k

        if not isinstance(value, str):
            return value
        try:
            return parse_k(value)
        except EnsembleError as e:
            self.fail(str(e), param, ctx)


def _pairs(values, what: str, flag: str) -> dict[str, str]:
    """``NAME=PATH`` options (or bare paths, named after the file or folder) as an ordered dict."""
    from pathlib import Path

    out: dict[str, str] = {}
    for v in values:
        name, sep, path = v.partition("=")
        if not sep:
            bare = v.rsplit("@", 1)[0] if what == "model" else v
            name, path = Path(bare).name.split(".")[0] if what == "split" else Path(bare.rstrip("/")).name, v
        if not is_name(name):
            raise EnsembleError(f"{flag} {v}: {what} name {name!r} must be {NAME_RULE}; write {flag} NAME=PATH")
        if name in out:
            raise EnsembleError(f"{flag}: {what} name {name!r} is given twice; give each {what} its own NAME=")
        out[name] = path
    return out


def _load_splits(data_paths: dict, columns: dict) -> dict:
    from ensemble.data.splits import load_split

    return {name: load_split(path, name=name, **columns) for name, path in data_paths.items()}


class InputFlags:
    """Models, data files, column options and the cache folder: from the flags, else from the
    project file (``--project``, or the nearest ensemble.toml), flags overriding it. The
    workflows read them as one :class:`~ensemble.workflows.inputs.Inputs` (:meth:`inputs`)."""

    def __init__(self, project, models, data, id_col, text_cols, label_col, encoding, cache_dir, quoting=None):
        from ensemble.cli.project import find_project, load_project
        from ensemble.workflows.members import fold_path

        path = project or find_project()
        self.project = load_project(path) if path else None
        p = self.project
        if p is not None:
            project_messages(p.path, p.member_names())  # a fix is a key of ensemble.toml, or the command that redoes everything
        self.models_given = bool(models)
        if models:
            from ensemble.averaging.sweeps import expand_members

            self.models = expand_members(_pairs(models, "model", "--model"))  # NAME=DIR@top3: 3 members
        else:
            self.models = p.model_paths() if p else {}
            for name, run in (p.runs if p else {}).items():
                out = p.run_output(run)
                if not fold_path(out, 0).exists():  # a fold group's: its first fold's average
                    raise EnsembleError(f"{out}: [runs] {name} of {p.path} is not averaged yet; run ensemble run (it "
                                        "averages every run, then predicts, votes and reports)")
        self.data = dict(p.data) if p else {}
        if data:
            self.data.update(_pairs(data, "split", "--data"))
        self.columns = dict(p.columns) if p else {}
        if label_col is not None and "," in label_col:
            label_col = [c.strip() for c in label_col.split(",") if c.strip()]
        for key, value in (("id", id_col), ("label", label_col), ("encoding", encoding), ("quoting", quoting),
                           ("label_sep", _from_meta("label_sep")), ("words", _from_meta("words")),
                           ("rouge_tokenizer", _from_meta("rouge_tokenizer")),
                           ("rouge_aggregate", _from_meta("rouge_aggregate"))):
            if value is not None:
                self.columns[key] = value
        generate = _from_meta("generate")
        if generate:  # --generate KEY=VALUE over [generate]
            self.columns["generate"] = {**dict(self.columns.get("generate") or {}), **generate_pairs(generate)}
        self.task = _from_meta("task") or (p.task if p else None)
        if "label" in self.columns:
            # a label column is optional on every split (test files lack it); the steps that fit
            # or score on a split say so when its labels are missing (Split.label_indices)
            self.columns["label_if_present"] = True
        if text_cols:
            self.columns["text"] = list(text_cols)
        self.cache_dir = cache_dir or (p.cache_dir if p else None)
        # fold groups: the folds file and the refits, from the flags, else the project file
        self.folds = p.folds if p else None
        self.fold_column = p.fold_column if p else None
        self.refit = p.refit if p and not models else {}

    def inputs(self, models=None, folds=None, fold_column=None, refit=None, inference=None, class_order=None):
        """The :class:`~ensemble.workflows.inputs.Inputs` the workflows read: these members (default:
        every member given), the data, columns and cache, the fold settings as given (resolved by
        :meth:`fold_settings`), the inference settings, and the class order (default: the project
        file's)."""
        from ensemble.workflows.inputs import Inputs

        p = self.project
        return Inputs(self.models if models is None else models, self.data, columns=self.columns, folds=folds,
                      fold_column=fold_column, refit=refit, cache_dir=self.cache_dir, inference=inference,
                      class_order=class_order or (p.vote.get("class_order") if p else None), task=self.task,
                      outputs=self.outputs(self.models if models is None else models))

    def outputs(self, members) -> dict:
        """Each member's output names: --outputs NAME=A,B, else the project file's ``outputs =``
        (for the members in ``members``)."""
        # the project's mappings for its own members (not for --model folders given by hand, as refit)
        said = {n: o for n, o in (self.project.outputs if self.project else {}).items()
                if n in members and not self.models_given}
        for v in _from_meta("outputs") or ():
            name, sep, names = v.partition("=")
            if not sep or not name or not names.strip(","):
                raise EnsembleError(f"--outputs {v}: write --outputs NAME=A,B,... (the member, then the label column "
                                    "of each of its outputs in its head's order)")
            said[name] = tuple(n.strip() for n in names.split(","))
        return said

    def fold_settings(self, folds, fold_column, refit=()) -> tuple:
        """(folds, fold_column, refit): the flags, else the project file's."""
        return folds or self.folds, fold_column or self.fold_column, _refit_pairs(refit) or self.refit

    def jobs(self, folds, fold_column) -> list:
        """Every model folder to run and its splits (:func:`~ensemble.workflows.foldgroups.member_jobs`):
        a fold group's fold models with their own held-out rows of --data train. Each folder is
        opened and checked before anything runs."""
        from ensemble.workflows.foldgroups import member_jobs
        from ensemble.workflows.gather import training_folds
        from ensemble.workflows.members import resolve_members

        splits = self.splits()
        folds, fold_column, _ = self.fold_settings(folds, fold_column)
        training = training_folds(splits, folds, "train", self.columns, fold_column)
        return member_jobs(resolve_members(self.models, None if training is None else training.k), splits, training,
                           self.task)

    def need(self, models: bool = True, data: bool = True) -> None:
        hint = "or write an ensemble.toml (ensemble init)"
        if models and not self.models:
            raise EnsembleError(f"no model given; pass --model NAME=PATH (a model folder), once per model, {hint}")
        if data and not self.data:
            raise EnsembleError(f"no data given; pass --data SPLIT=PATH (a data file), once per split, {hint}")

    def splits(self) -> dict:
        return _load_splits(self.data, self.columns)

    def inference(self, batch_size=None, max_length=None, pad_to_multiple_of=None, device=None, dtype=None,
                  trust_remote_code=False):
        """The inference settings: the flags, else [predict] of the project file, else the defaults."""
        from ensemble.inference.settings import InferenceSettings

        given = dict(batch_size=batch_size, max_length=max_length, pad_to_multiple_of=pad_to_multiple_of,
                     device=device, dtype=dtype)
        base = dict(self.project.predict) if self.project is not None else {}
        merged = {**base, **{k: v for k, v in given.items() if v is not None}}
        return InferenceSettings.of({**merged, "trust_remote_code": trust_remote_code})


def data_options(f):
    """--data, --project and the options that say how to read data files."""
    f = column_options(f)
    f = click.option("--project", type=click.Path(path_type=str), default=None,
                     help="The project file [default: the nearest ensemble.toml up from here].")(f)
    return click.option("--data", "data", multiple=True, metavar="SPLIT=PATH",
                        help="A data file (.csv, .tsv, .jsonl, .parquet), repeatable: --data valid=data/valid.csv.")(f)


def inference_options(f):
    """The inference settings: how predict runs, and which cache entries vote and report read
    (an entry computed with other settings is never used). Each defaults to [predict] of
    ensemble.toml, else to predict's default."""
    for opt in reversed([
        click.option("--batch-size", type=click.IntRange(min=1), default=None, help="[default: 32]"),
        click.option("--max-length", type=click.IntRange(min=1), default=None,
                     help="Truncate to this many tokens (token classifiers: each window's length; a longer text runs as "
                          "overlapping windows, never truncated) [default: the model's limit]."),
        click.option("--pad-to-multiple-of", type=click.IntRange(min=1), default=None,
                     help="Pad each batch to a multiple of this (8 for tensor cores)."),
        click.option("--device", default=None, help="auto (CUDA, MPS, CPU), cpu, cuda, cuda:N, mps [default: auto]."),
        click.option("--dtype", type=click.Choice(allowed("dtype")), default=None,
                     help="auto: bf16 on GPUs that have it, fp16 on other GPUs, fp32 on CPU [default: auto]."),
    ]):
        f = opt(f)
    return f


def generate_pairs(items) -> dict:
    """``--generate KEY=VALUE`` items as settings: each value read as JSON (``4``, ``1.2``,
    ``true``), else kept as text (a prompt)."""
    import json

    out = {}
    for item in items:
        key, sep, value = str(item).partition("=")
        if not sep or not key.strip():
            raise EnsembleError(f"--generate {item!r}: expected KEY=VALUE, e.g. --generate num_beams=4")
        try:
            out[key.strip()] = json.loads(value)
        except ValueError:
            out[key.strip()] = value
    return out


def _to_meta(key: str):
    """A click callback that keeps an option's value in the context (read by :class:`InputFlags`
    and :func:`value_flags`), so that every command that reads data takes it without a parameter."""
    def keep(ctx, param, value):
        if value is not None and value is not False:
            ctx.meta[f"ensemble.{key}"] = value
        return value
    return keep


def _from_meta(key: str):
    ctx = click.get_current_context(silent=True)
    return None if ctx is None else ctx.meta.get(f"ensemble.{key}")


def value_options(f, metric: bool = False):
    """--threshold and --clip (and ``metric``: --metric): how regression and multi-label
    ensembles are fitted and decided (vote, report)."""
    extra = [click.option("--metric", default=None, expose_value=False, callback=_to_meta("metric"),
                          help="The competition's metric: what auto decides by and the headline is in. "
                               "Classifiers: accuracy, macro_f1, log_loss, roc_auc, qwk [default: accuracy]; "
                               "regression and multi-label, which fit weights by it too: pearson, spearman, rmse, "
                               "mae, mcrmse; f1_micro, f1_macro, f1_samples [default: pearson, or mcrmse for "
                               "several targets; f1_micro]; entities: f<beta>, entity-level micro F-beta (f1, or "
                               "f5 as PII Data Detection) [default: f1].")] if metric else []
    for opt in reversed([*extra,
        click.option("--threshold", default=None, expose_value=False, callback=_to_meta("threshold"),
                     help="Multi-label: global (one, fitted), per_label (fitted), or a probability in (0, 1) "
                          "(or one per label, A,B,...) [default: global]. Entities: the probability of O under which "
                          "an entity tag wins, per_label (one per type, fitted) or a number in (0, 1] [default: "
                          "none, plain argmax]."),
        click.option("--clip", is_flag=True, default=False, expose_value=False, callback=_to_meta("clip"),
                     help="Regression: clip the ensemble's outputs to the training labels' range (--data train), "
                          "else the validation targets'."),
        click.option("--outputs", multiple=True, metavar="NAME=A,B,...", expose_value=False,
                     callback=_to_meta("outputs"),
                     help="Regression and multi-label: the label column of each of member NAME's outputs, in its "
                          "head's order, for a head that does not name them (id2label LABEL_0...) (repeatable)."),
    ]):
        f = opt(f)
    return f


def value_flags(project=None) -> dict:
    """task, threshold and clip: the flags, else the project file's ([data] task, [vote])."""
    vote = project.vote if project is not None else {}
    out = {"task": _from_meta("task") or (project.task if project is not None else None),
           "threshold": _from_meta("threshold") or vote.get("threshold") or "global",
           "clip": bool(_from_meta("clip")) or vote.get("clip", False)}
    metric = _from_meta("metric") or vote.get("metric")
    if metric is not None:
        out["metric"] = metric
    return out


def column_options(f):
    """The options that say how to read a data file's columns."""
    for opt in reversed([
        click.option("--id", "id_col", default=None, help="Id column [default: id, else row numbers]."),
        click.option("--text", "text_cols", multiple=True,
                     help="Text column; twice for text pairs [default: text]."),
        click.option("--label", "label_col", default=None,
                     help="Label column, or A,B,... for several (regression targets, 0/1 label columns) "
                          "[default: label when present]."),
        click.option("--label-sep", default=None, expose_value=False, callback=_to_meta("label_sep"),
                     help="Multi-label: the label column joins each row's labels with this separator."),
        click.option("--words", type=click.Choice(allowed("words")), default=None, expose_value=False,
                     callback=_to_meta("words"),
                     help="Entities: the text column holds pre-split words (a list per row), the label column a tag "
                          "per word; a word takes its first sub-token's outputs, or their mean."),
        click.option("--generate", multiple=True, default=(), expose_value=False, callback=_to_meta("generate"),
                     metavar="KEY=VALUE",
                     help="Generation members: a generate setting (num_beams=4, max_new_tokens=60, "
                          "num_return_sequences=4, length_penalty, no_repeat_ngram_size, do_sample=true, seed, "
                          "prompt='Summarize: {text}'); repeat for several [default: the folder's "
                          "generation_config.json]."),
        click.option("--rouge-tokenizer", type=click.Choice(allowed("rouge_tokenizer")), default=None,
                     expose_value=False, callback=_to_meta("rouge_tokenizer"),
                     help="Summarization: the tokens ROUGE counts [default: morphemes, as AI Stages scores Korean]."),
        click.option("--rouge-aggregate", type=click.Choice(allowed("rouge_aggregate")), default=None,
                     expose_value=False, callback=_to_meta("rouge_aggregate"),
                     help="Summarization: a row's several references averaged (mean, the default) or the best (max)."),
        click.option("--task", type=click.Choice(TASK_CHOICES), default=None,
                     expose_value=False, callback=_to_meta("task"),
                     help="The members' task [default: from their config.json: problem_type, num_labels]."),
        click.option("--encoding", default=None, help="Encoding of CSV/TSV/JSONL files, e.g. cp949 [default: UTF-8]."),
        click.option("--quoting", type=click.Choice(allowed("quoting")), default=None,
                     help="Quotes in CSV/TSV: auto (standard; a stray quote that swallows lines is an error in a TSV), "
                          "csv (quoted texts may span lines), none (quotes are text: raw TSVs) [default: auto]."),
    ]):
        f = opt(f)
    return f


def fold_options(f, count: bool = False, refit: bool = True):
    """--folds FILE and --fold-column (predict, vote); report's --folds also takes K."""
    what = ("K of the repeated stratified K-fold [default: 5], or a folds FILE (id,fold) of --data train: the members "
            "are then fold groups (--model bert=runs/bert-fold{fold}), scored and fitted on their out-of-fold rows"
            if count else "The folds file (id,fold, or a Kaggle kfold column) of --data train, for fold-group members "
            "(--model bert=runs/bert-fold{fold}): fold model k predicts the rows of fold k")
    options = [
        click.option("--folds", "folds", default=None, metavar="K|FILE" if count else "FILE", help=what),
        click.option("--fold-column", default=None, help="The folds file's fold column [default: fold, else kfold]."),
        click.option("--refit", "refit", multiple=True, metavar="NAME=GROUP",
                     help="A --model trained on every training row takes fold group GROUP's place on test, with its "
                          "weight (repeatable)."),
    ]
    for opt in reversed(options if refit else options[:2]):
        f = opt(f)
    return f


def _refit_pairs(values) -> dict[str, str]:
    """--refit NAME=GROUP pairs."""
    out = {}
    for v in values:
        name, sep, group = v.partition("=")
        if not sep or not name or not group:
            raise EnsembleError(f"--refit {v}: write --refit NAME=GROUP (the refit's --model name, then its fold group's)")
        out[name] = group
    return out


def folds_value(value):
    """report's --folds: K (digits) or a folds file."""
    if value is None:
        return 5
    if not isinstance(value, str):  # the project file's folds
        return value
    if value.isdigit():
        if int(value) < 2:
            raise EnsembleError(f"--folds {value}: K-fold needs 2 folds or more")
        return int(value)
    return value


def adjust_options(f):
    """--adjust, --prior and --adjust-metric (vote and report)."""
    for opt in reversed([
        click.option("--adjust", type=click.Choice(allowed("adjust")), default=None,
                     help="Class-prior adjustment of the ensemble: prior (shift by log target/validation prior), "
                          "fit (per-class offsets fitted on validation), auto (one only when its cross-validated "
                          "gain is sure) [vote default: none; report default: auto]."),
        click.option("--prior", default=None, metavar="FILE|uniform|A=p,B=q",
                     help="Target class prior: a labelled data file (the training file), uniform, or shares."),
        click.option("--adjust-metric", type=click.Choice(allowed("adjust_metric")), default=None,
                     help="What --adjust fit maximises and auto compares by [default: accuracy]."),
    ]):
        f = opt(f)
    return f
