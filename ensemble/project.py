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

[runs]                 # optional: Trainer runs that `ensemble run` averages into weights/<name>-top<k>
bert-a = { path = "runs/bert-a", k = 3 }
bert-b = { path = "runs/bert-b", tokenizer = "base" }   # when its checkpoints hold no tokenizer

[vote]                 # optional defaults of ensemble vote / run
weights = "auto"
combine = "prob"
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

from .errors import EnsembleError

__all__ = ["Project", "ModelSpec", "RunSpec", "find_project", "load_project", "PROJECT_FILE"]

PROJECT_FILE = "ensemble.toml"
_NAME = re.compile(r"[\w][\w.+-]*")
_TABLES = {
    "data": {"valid", "test", "sample_submission", "id", "text", "label", "encoding"},
    "models": None,
    "runs": None,
    "vote": {"weights", "combine"},
}


@dataclass(frozen=True)
class ModelSpec:
    name: str
    path: Path
    trained_on_valid: bool = False


@dataclass(frozen=True)
class RunSpec:
    name: str
    path: Path
    k: int | None = None
    metric: str | None = None
    tokenizer: Path | None = None


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

    @property
    def root(self) -> Path:
        return self.path.parent

    @property
    def cache_dir(self) -> Path:
        return self.root / ".ensemble" / "cache"

    def run_output(self, run: RunSpec, k: int | None = None) -> Path:
        return self.root / "weights" / f"{run.name}-top{k or run.k or 4}"

    def model_paths(self, k: int | None = None) -> dict[str, Path]:
        """Every member: the averaged output of each run, then the listed models."""
        out = {name: self.run_output(run, k) for name, run in self.runs.items()}
        for name, spec in self.models.items():
            out[name] = spec.path
        return out

    @property
    def trained_on_valid(self) -> list[str]:
        return [n for n, m in self.models.items() if m.trained_on_valid]


def find_project(start: str | os.PathLike | None = None) -> Path | None:
    """The nearest ``ensemble.toml`` in ``start`` (default: the current folder) or its parents."""
    here = Path(start or os.getcwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / PROJECT_FILE).is_file():
            return folder / PROJECT_FILE
    return None


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
    """Read and check a project file; paths become absolute, relative to the file."""
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
    root = path.parent

    def fail(table: str, key: str | None, why: str):
        where = f"[{table}]" + (f" {key}" if key else "")
        raise EnsembleError(f"{path}:{_line_of(text, table, key)}: {where}: {why}")

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
                    fail(table, key, f"unknown key; expected one of {', '.join(sorted(allowed))}")

    def rel(table, key, value) -> Path:
        if not isinstance(value, str) or not value:
            fail(table, key, f"must be a path (a string), got {value!r}")
        p = Path(value)
        return p if p.is_absolute() else root / p

    data_t = doc.get("data", {})
    data = {k: rel("data", k, data_t[k]) for k in ("valid", "test") if k in data_t}
    sample = rel("data", "sample_submission", data_t["sample_submission"]) if "sample_submission" in data_t else None
    columns = {}
    for key in ("id", "label", "encoding"):
        if key in data_t:
            if not isinstance(data_t[key], str):
                fail("data", key, f"must be a column name (a string), got {data_t[key]!r}")
            columns[key] = data_t[key]
    if "text" in data_t:
        t = data_t["text"]
        ok = isinstance(t, str) or (isinstance(t, list) and len(t) in (1, 2) and all(isinstance(c, str) for c in t))
        if not ok:
            fail("data", "text", f"must be a column name or a list of two, got {t!r}")
        columns["text"] = [t] if isinstance(t, str) else list(t)

    def check_name(table, name):
        if not _NAME.fullmatch(name) or ".." in name:
            fail(table, name, "names must be letters, digits, '_', '-', '.' or '+'")

    models = {}
    for name, value in doc.get("models", {}).items():
        check_name("models", name)
        if isinstance(value, str):
            models[name] = ModelSpec(name, rel("models", name, value))
        elif isinstance(value, dict):
            unknown = set(value) - {"path", "trained_on_valid"}
            if unknown:
                fail("models", name, f"unknown key {sorted(unknown)[0]!r}; expected path, trained_on_valid")
            if "path" not in value:
                fail("models", name, "needs a path: { path = \"weights/...\" }")
            tov = value.get("trained_on_valid", False)
            if not isinstance(tov, bool):
                fail("models", name, f"trained_on_valid must be true or false, got {tov!r}")
            models[name] = ModelSpec(name, rel("models", name, value["path"]), tov)
        else:
            fail("models", name, f"must be a path or {{ path = ..., trained_on_valid = ... }}, got {value!r}")
    runs = {}
    for name, value in doc.get("runs", {}).items():
        check_name("runs", name)
        if name in models:
            fail("runs", name, "is also a name under [models]; give each member its own name")
        if isinstance(value, str):
            value = {"path": value}
        if not isinstance(value, dict) or "path" not in value:
            fail("runs", name, "must be a run folder or { path = ..., k = ..., metric = ... }")
        unknown = set(value) - {"path", "k", "metric", "tokenizer"}
        if unknown:
            fail("runs", name, f"unknown key {sorted(unknown)[0]!r}; expected path, k, metric, tokenizer")
        k = value.get("k")
        if k is not None and (not isinstance(k, int) or isinstance(k, bool) or k < 1):
            fail("runs", name, f"k must be a positive integer, got {k!r}")
        metric = value.get("metric")
        if metric is not None and not isinstance(metric, str):
            fail("runs", name, f"metric must be a string, got {metric!r}")
        tok = rel("runs", name, value["tokenizer"]) if "tokenizer" in value else None
        runs[name] = RunSpec(name, rel("runs", name, value["path"]), k, metric, tok)
    vote = dict(doc.get("vote", {}))
    for key, value in vote.items():
        if not isinstance(value, str):
            fail("vote", key, f"must be a string, got {value!r}")
    return Project(path, data, sample, columns, models, runs, vote)
