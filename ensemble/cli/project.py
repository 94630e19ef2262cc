"""The project file, ``ensemble.toml``: the data and the models named once for every command.

```toml
[data]
valid = "data/valid.csv"
test = "data/test.csv"
sample_submission = "data/sample_submission.csv"   # optional
id = "id"
text = "text"          # or ["sentence1", "sentence2"]
label = "label"

[models]
bert-kor = "weights/bert-kor-top4"
roberta = { path = "runs/roberta/checkpoint-1200", trained_on_valid = false }
electra = "sweeps/electra@top3"   # the best checkpoint of each of a sweep's 3 best trials

[runs]                 # optional: Trainer runs that `ensemble run` averages into weights/<name>-top<k>
bert-a = { path = "runs/bert-a", k = 3 }
bert-b = { path = "runs/bert-b", tokenizer = "base" }   # when its checkpoints hold no tokenizer
sts = { path = "runs/sts", outputs = ["similarity", "agreement"] }   # a head without id2label names
klue = { path = "sweeps/klue", k = 4, across_trials = true }   # the best 4 checkpoints of any trial

[vote]                 # optional defaults of ensemble vote / run
weights = "auto"
combine = "prob"
adjust = "auto"        # class-prior adjustment: none, prior, fit or auto
prior = "data/train.csv"   # target class prior: a labelled file, "uniform" or "a=0.7,b=0.3"
```

K-fold models (fold groups) instead of a validation split:

```toml
[data]
train = "data/train.csv"
folds = "data/folds.csv"   # id,fold (ensemble folds make); fold_column = "kfold" for another column
test = "data/test.csv"
valid = "data/valid.csv"   # optional: an untouched holdout

[models]
bert = "runs/bert-fold{fold}/model"              # fold k's model folder; or a list of K folders
bert-full = { path = "runs/bert-full/model", refit_of = "bert" }   # trained on every row

[runs]
roberta = { path = "runs/roberta-fold{fold}", k = 3 }   # each fold's top-3 average
```

Paths are relative to the file. The file is found like git finds ``.git``: in the current folder
or the nearest parent, or given with ``--project``. Errors name the file, the line and the key.
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

from ensemble.core.errors import NAME_RULE, EnsembleError, is_name
from ensemble.io.projectfile import PROJECT_FILE, find_project

__all__ = ['Project', 'ModelSpec', 'RunSpec', 'find_project', 'load_project', 'adjust_settings', 'PROJECT_FILE']

_TABLES = {
    "data": {"valid", "test", "train", "folds", "fold_column", "sample_submission", "id", "text", "label", "encoding",
             "quoting", "task", "label_sep", "words", "rouge_tokenizer", "rouge_aggregate"},
    "models": None,
    "runs": None,
    "vote": {"weights", "combine", "adjust", "prior", "adjust_metric", "class_order", "metric", "threshold", "clip"},
    "predict": {"batch_size", "max_length", "pad_to_multiple_of", "device", "dtype"},
    # generation members' generate settings (GenerationForward's, checked there)
    "generate": {"num_beams", "max_new_tokens", "length_penalty", "no_repeat_ngram_size", "num_return_sequences",
                 "do_sample", "seed", "prompt"},
}


@dataclass(frozen=True)
class ModelSpec:
    name: str
    path: Path | tuple  # a fold group: a path with {fold}, or a tuple of K folders
    trained_on_valid: bool = False
    refit_of: str | None = None  # a full-data refit takes this fold group's place on test
    trust_remote_code: bool = False  # let transformers run the code the model folder ships (auto_map)
    outputs: tuple | None = None  # the label column of each output, for a head that does not name them


@dataclass(frozen=True)
class RunSpec:
    name: str
    path: Path
    k: int | None = None
    metric: str | None = None
    tokenizer: Path | None = None
    across_trials: bool = False  # path is a sweep: rank the checkpoints of all its trials together
    refit_of: str | None = None  # a full-data refit takes this fold group's place on test
    greater_is_better: bool | None = None  # the metric's direction, when neither the run nor its name says it
    trust_remote_code: bool = False  # copy (and run) the code the checkpoints ship (auto_map)
    outputs: tuple | None = None  # the label column of each output, for a head that does not name them


@dataclass(frozen=True)
class Project:
    """A parsed ``ensemble.toml``."""

    path: Path
    data: dict = field(default_factory=dict)       # split name -> Path (valid, test)
    sample_submission: Path | None = None
    columns: dict = field(default_factory=dict)    # id, text, label, encoding
    models: dict = field(default_factory=dict)     # name -> ModelSpec
    runs: dict = field(default_factory=dict)       # name -> RunSpec
    vote: dict = field(default_factory=dict)
    folds: Path | None = None                      # the folds file of data["train"], for fold groups
    fold_column: str | None = None
    predict: dict = field(default_factory=dict)    # inference settings: which cache entries every step reads
    task: str | None = None                        # [data] task: over what the members' config.json suggests

    @property
    def refit(self) -> dict[str, str]:
        """Full-data refits: member name -> the fold group whose place it takes on test."""
        return {n: m.refit_of for n, m in (*self.models.items(), *self.runs.items()) if m.refit_of}

    @property
    def outputs(self) -> dict[str, tuple]:
        """Member name -> the label column of each of its outputs (``outputs =``), where said; a
        sweep's ``DIR@top3`` entry gives its mapping to each of the members it expands to."""
        said = {n: m.outputs for n, m in self.runs.items() if m.outputs}
        for n, m in self.models.items():
            if m.outputs:
                for name in self._expanded_names(lambda spec, n=n: spec.name == n):
                    said[name] = m.outputs
        return said

    @property
    def root(self) -> Path:
        return self.path.parent

    @property
    def cache_dir(self) -> Path:
        return self.root / ".ensemble" / "cache"

    def run_output(self, run: RunSpec, k: int | None = None) -> Path:
        """Where a run's top-K average goes; for a run with ``{fold}``, a path with ``{fold}`` too
        (each fold's average)."""
        from ensemble.workflows.members import FOLD

        fold = f"-fold{FOLD}" if FOLD in str(run.path) else ""
        return self.root / "weights" / f"{run.name}{fold}-top{k or run.k or 4}"

    def model_paths(self, k: int | None = None) -> dict[str, Path]:
        """Every member: the averaged output of each run, then the listed models; a model
        written ``"DIR@top3"`` is the best checkpoint of each of the sweep's 3 best trials."""
        from ensemble.averaging.sweeps import expand_members

        out = {name: self.run_output(run, k) for name, run in self.runs.items()}
        for name, path in expand_members({n: m.path for n, m in self.models.items()}).items():
            if name in out:
                raise EnsembleError(f"{self.path}: member {name!r} comes from [models] and [runs]; rename one")
            out[name] = path
        return out

    def member_names(self) -> frozenset | None:
        """The members' names, as :meth:`model_paths` lists them; None when they cannot be listed
        (a sweep folder missing: the command that needs them says so)."""
        try:
            return frozenset(self.model_paths())
        except EnsembleError:
            return None

    @property
    def trained_on_valid(self) -> list[str]:
        return self._expanded_names(lambda m: m.trained_on_valid)

    @property
    def trusted(self) -> list[str]:
        """The members whose model code may run (``trust_remote_code = true``)."""
        return self._expanded_names(lambda m: m.trust_remote_code) + [n for n, r in self.runs.items()
                                                                      if r.trust_remote_code]

    def _expanded_names(self, flagged) -> list[str]:
        """The names of the [models] members for which ``flagged(spec)`` holds, ``DIR@top3`` expanded."""
        from ensemble.averaging.sweeps import expand_members, parse_member

        names = []
        for n, m in self.models.items():
            if flagged(m):
                names += list(expand_members({n: m.path})) if parse_member(m.path) else [n]
        return names


def weights_setting(project: Project | None, weights: str | None = None) -> str:
    """The vote's weights: as given (``--weights``), else the project's ``[vote] weights``, else
    :data:`~ensemble.core.options.DEFAULT_WEIGHTS`; the one place ``vote`` and ``run`` read it."""
    from ensemble.core.options import DEFAULT_WEIGHTS

    return weights or (project.vote.get("weights") if project is not None else None) or DEFAULT_WEIGHTS


def adjust_settings(project: Project | None, adjust: str | None = None, prior=None, metric: str | None = None,
                    default: str = "none"):
    """(adjust, prior, adjust_metric): the given values, else the project's ``[vote]`` adjust,
    prior (a file path relative to the project file) and adjust_metric, else ``default``,
    no prior and None (the task's default: the primary metric when an adjustment can be fitted for
    it, else accuracy)."""
    from ensemble.data.priors import prior_from_project

    v = project.vote if project is not None else {}
    if prior is None and v.get("prior"):
        prior = prior_from_project(v["prior"], project.root)
    return adjust or v.get("adjust") or default, prior, metric or v.get("adjust_metric") or None


def _line_of(text: str, table: str, key: str | None) -> int:
    """The line where ``key`` is set in ``[table]`` (or the table header), for messages."""
    lines = text.splitlines()
    start = next((i for i, l in enumerate(lines) if re.match(rf"\s*\[\s*{re.escape(table)}\s*\]", l)), None)
    if start is None:
        return 1
    if key is None:
        return start + 1
    for i in range(start + 1, len(lines)):
        if re.match(r"\s*\[", lines[i]):
            break
        if re.match(rf"\s*[\"']?{re.escape(key)}[\"']?\s*=", lines[i]):
            return i + 1
    return start + 1


def load_project(path: str | os.PathLike) -> Project:
    """Read and check a project file, whole, before any work; paths become absolute, relative to
    the file. Errors name the file, the line and the key."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib

    path = Path(path).resolve()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise EnsembleError(f"{path}: not found; pass --project with an ensemble.toml, or run ensemble init") from None
    except UnicodeDecodeError:
        raise EnsembleError(f"{path}: is not UTF-8 text; re-save it as UTF-8") from None
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise EnsembleError(f"{path}: not valid TOML ({e}); fix the file") from None
    r = _Reader(path, text)
    for table, value in doc.items():
        if table not in _TABLES:
            raise EnsembleError(f"{path}:{_line_of(text, table, None)}: unknown table [{table}]; "
                                f"expected {', '.join('[' + t + ']' for t in _TABLES)}")
        if not isinstance(value, dict):
            raise EnsembleError(f"{path}: {table} must be a table ([{table}]), got a {type(value).__name__}")
        allowed = _TABLES[table]
        if allowed is not None:
            for key in value:
                if key not in allowed:
                    r.fail(table, key, f"unknown key; expected one of {', '.join(sorted(allowed))}")
    data_t = dict(doc.get("data", {}))
    task = data_t.pop("task", None)
    from ensemble.tasks import TASKS

    if task is not None and task not in TASKS:
        r.fail("data", "task", f"must be {', '.join(list(TASKS)[:-1])} or {list(TASKS)[-1]}, got {task!r}")
    data, sample, columns = _read_data(r, data_t)
    if doc.get("generate"):
        columns["generate"] = _read_generate(r, dict(doc["generate"]))
    folds = columns.pop("folds", None)
    fold_column = columns.pop("fold_column", None)
    models = _read_models(r, doc.get("models", {}))
    runs = _read_runs(r, doc.get("runs", {}), models)
    for table, specs in (("models", models), ("runs", runs)):
        for name, m in specs.items():
            if m.refit_of is not None and m.refit_of not in models and m.refit_of not in runs:
                r.fail(table, name, _REFIT_OF.format(m.refit_of))
    return Project(path, data, sample, columns, models, runs, _read_vote(r, dict(doc.get("vote", {}))), folds,
                   fold_column, _read_predict(r, dict(doc.get("predict", {}))), task)


class _Reader:
    """The project file being read: errors that name its line and key, paths relative to it."""

    def __init__(self, path: Path, text: str):
        self.path, self.text, self.root = path, text, path.parent

    def fail(self, table: str, key: str | None, why: str):
        where = f"[{table}]" + (f" {key}" if key else "")
        raise EnsembleError(f"{self.path}:{_line_of(self.text, table, key)}: {where}: {why}")

    def rel(self, table, key, value) -> Path:
        if not isinstance(value, str) or not value:
            self.fail(table, key, f"must be a path (a string), got {value!r}")
        p = Path(value)
        return p if p.is_absolute() else self.root / p

    def flag(self, table: str, name: str, value: dict, key: str, default: bool | None = False) -> bool | None:
        """``value[key]``, a boolean (``default`` when absent)."""
        v = value.get(key, default)
        if v is not default and not isinstance(v, bool):
            self.fail(table, name, f"{key} must be true or false, got {v!r}")
        return v

    def check_name(self, table, name):
        if not is_name(name):
            self.fail(table, name, f"names must be {NAME_RULE}")


def _read_data(r: _Reader, data_t: dict):
    """[data]: the split files, the sample submission and the column options."""
    data = {k: r.rel("data", k, data_t[k]) for k in ("valid", "test", "train") if k in data_t}
    sample = r.rel("data", "sample_submission", data_t["sample_submission"]) if "sample_submission" in data_t else None
    columns = {}
    if "folds" in data_t:
        if "train" not in data_t:
            r.fail("data", "folds", "splits the training file: add train = \"data/train.csv\" (the file the fold models "
                                    "were trained on)")
        columns["folds"] = r.rel("data", "folds", data_t["folds"])
    if isinstance(data_t.get("label"), list):  # several label columns: targets, or one 0/1 column per label
        lab = data_t["label"]
        if not lab or not all(isinstance(c, str) for c in lab) or len(set(lab)) != len(lab):
            r.fail("data", "label", f"must be a column name or a list of distinct column names, got {lab!r}")
        columns["label"] = list(lab)
    for key in ("id", "label", "encoding", "quoting", "fold_column", "label_sep", "words", "rouge_tokenizer",
                "rouge_aggregate"):
        if key in data_t and key not in columns:
            if not isinstance(data_t[key], str):
                r.fail("data", key, f"must be a column name (a string), got {data_t[key]!r}")
            columns[key] = data_t[key]
    if columns.get("quoting", "auto") not in ("auto", "csv", "none"):
        r.fail("data", "quoting", f"must be auto, csv or none, got {columns['quoting']!r}")
    from ensemble.core.options import ALLOWED

    if "words" in columns and columns["words"] not in ALLOWED["words"]:
        r.fail("data", "words", f"must be first or mean (a word's first sub-token, or their mean), got "
                                f"{columns['words']!r}")
    for key in ("rouge_tokenizer", "rouge_aggregate"):
        if key in columns and columns[key] not in ALLOWED[key]:
            r.fail("data", key, f"must be one of {', '.join(ALLOWED[key])}, got {columns[key]!r}")
    if "text" in data_t:
        t = data_t["text"]
        ok = isinstance(t, str) or (isinstance(t, list) and len(t) in (1, 2) and all(isinstance(c, str) for c in t))
        if not ok:
            r.fail("data", "text", f"must be a column name or a list of two, got {t!r}")
        columns["text"] = [t] if isinstance(t, str) else list(t)
    return data, sample, columns


_REFIT_OF = "refit_of must name a fold group of [models] or [runs]; got {!r}"


def _refit_value(r: _Reader, table: str, name: str, value: dict) -> str | None:
    """An entry's ``refit_of``: the name of the fold group whose place it takes, checked to be a
    string (that the group exists is checked once every table is read)."""
    refit_of = value.get("refit_of")
    if refit_of is not None and not isinstance(refit_of, str):
        r.fail(table, name, _REFIT_OF.format(refit_of))
    return refit_of


def _outputs_value(r: _Reader, table: str, name: str, value: dict) -> tuple | None:
    """An entry's ``outputs``: the label column of each output in its head's order, a list of
    distinct names (that they fit the head and the columns is checked when outputs are read)."""
    names = value.get("outputs")
    if names is None:
        return None
    if (not isinstance(names, list) or not names or not all(isinstance(n, str) and n.strip() for n in names)
            or len(set(names)) != len(names)):
        r.fail(table, name, f"outputs must list the label column of each output once, in its head's order, e.g. "
                            f"[\"similarity\", \"agreement\"]; got {names!r}")
    return tuple(n.strip() for n in names)


def _read_models(r: _Reader, table: dict) -> dict:
    """[models]: ready model folders (or a sweep's DIR@top3)."""
    models = {}
    for name, value in table.items():
        r.check_name("models", name)
        if isinstance(value, str):
            models[name] = ModelSpec(name, r.rel("models", name, value))
        elif isinstance(value, list):  # a fold group: its K model folders in fold order
            if len(value) < 2:
                r.fail("models", name, f"a list is a fold group's model folders, one per fold (2 or more); got {value!r}")
            models[name] = ModelSpec(name, tuple(r.rel("models", name, v) for v in value))
        elif isinstance(value, dict):
            unknown = set(value) - {"path", "trained_on_valid", "refit_of", "trust_remote_code", "outputs"}
            if unknown:
                r.fail("models", name, f"unknown key {sorted(unknown)[0]!r}; expected path, trained_on_valid, refit_of, "
                                       "trust_remote_code, outputs")
            refit_of = _refit_value(r, "models", name, value)
            if "path" not in value:
                r.fail("models", name, "needs a path: { path = \"weights/...\" }")
            tov, trust = (r.flag("models", name, value, key) for key in ("trained_on_valid", "trust_remote_code"))
            models[name] = ModelSpec(name, r.rel("models", name, value["path"]), tov, refit_of, trust,
                                     _outputs_value(r, "models", name, value))
        else:
            r.fail("models", name, f"must be a path or {{ path = ..., trained_on_valid = ... }}, got {value!r}")
    return models


def _read_runs(r: _Reader, table: dict, models: dict) -> dict:
    """[runs]: Trainer runs that ensemble run averages."""
    runs = {}
    for name, value in table.items():
        r.check_name("runs", name)
        if name in models:
            r.fail("runs", name, "is also a name under [models]; give each member its own name")
        if isinstance(value, str):
            value = {"path": value}
        if not isinstance(value, dict) or "path" not in value:
            r.fail("runs", name, "must be a run folder or { path = ..., k = ..., metric = ... }")
        keys = ("path", "k", "metric", "greater_is_better", "tokenizer", "across_trials", "refit_of", "trust_remote_code",
                "outputs")
        unknown = set(value) - set(keys)
        if unknown:
            r.fail("runs", name, f"unknown key {sorted(unknown)[0]!r}; expected {', '.join(keys)}")
        refit_of = _refit_value(r, "runs", name, value)
        across, trust = (r.flag("runs", name, value, key) for key in ("across_trials", "trust_remote_code"))
        gib = r.flag("runs", name, value, "greater_is_better", None)  # None: the run or the name says it
        k = value.get("k")
        if k is not None and (not isinstance(k, int) or isinstance(k, bool) or k < 1):
            r.fail("runs", name, f"k must be a positive integer, got {k!r}")
        metric = value.get("metric")
        if metric is not None and not isinstance(metric, str):
            r.fail("runs", name, f"metric must be a string, got {metric!r}")
        tok = r.rel("runs", name, value["tokenizer"]) if "tokenizer" in value else None
        runs[name] = RunSpec(name, r.rel("runs", name, value["path"]), k, metric, tok, across, refit_of, gib, trust,
                             _outputs_value(r, "runs", name, value))
    return runs


def _read_vote(r: _Reader, vote: dict) -> dict:
    """[vote]: the defaults of vote and run, every value checked (a .json weights path made absolute)."""
    if "clip" in vote and not isinstance(vote["clip"], bool):
        r.fail("vote", "clip", f"must be true or false, got {vote['clip']!r}")
    if isinstance(vote.get("threshold"), (int, float)) and not isinstance(vote.get("threshold"), bool):
        vote["threshold"] = str(vote["threshold"])
    for key, value in vote.items():
        if not isinstance(value, str) and key != "clip":
            r.fail("vote", key, f"must be a string, got {value!r}")
    if "threshold" in vote:
        from ensemble.core.options import check_thresholds

        try:
            check_thresholds(vote["threshold"])
        except EnsembleError as e:
            r.fail("vote", "threshold", str(e).split("; ")[0].replace("threshold ", ""))
    from ensemble.core.options import ALLOWED, WEIGHTS_EXPECTED, weights_kind

    for key in ("adjust", "adjust_metric", "combine"):
        if key in vote and vote[key] not in ALLOWED[key]:
            r.fail("vote", key, f"must be one of {', '.join(ALLOWED[key])}, got {vote[key]!r}")
    if "weights" in vote:  # checked here, before any average or prediction is made
        w = vote["weights"]
        if w.endswith(".json"):
            vote["weights"] = str(r.rel("vote", "weights", w))
        elif not (weights_kind(w) == "method" or (weights_kind(w) == "fixed" and _numbers(w))):
            r.fail("vote", "weights", f"must be {WEIGHTS_EXPECTED.replace(' (best3)', '')}; got {w!r}")
    return vote


def _read_generate(r: _Reader, table: dict) -> dict:
    """[generate]: the generate settings of generation members (checked as GenerationForward
    checks them), carried with the data to predict, vote and report."""
    from ensemble.inference.forwards import GenerationForward

    for key, value in table.items():
        try:
            GenerationForward(**{key: value})
        except EnsembleError as e:
            r.fail("generate", key, str(e).split("; ")[0])
    return table


def _read_predict(r: _Reader, table: dict) -> dict:
    """[predict]: the inference settings of predict and run, and of the cache entries vote and
    report read (checked as InferenceSettings checks them)."""
    from ensemble.inference.settings import InferenceSettings

    for key, value in table.items():
        try:
            InferenceSettings.of({key: value})
        except (EnsembleError, TypeError, AttributeError) as e:
            r.fail("predict", key, str(e).split("; ")[0] if isinstance(e, EnsembleError) else f"got {value!r}")
    return table


def _numbers(text: str) -> bool:
    try:
        return all(float(v) >= 0 for v in text.split(","))
    except ValueError:
        return False
