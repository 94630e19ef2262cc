"""``ensemble init``: an ``ensemble.toml`` written from the folders it finds."""

from __future__ import annotations

import os
import re
from pathlib import Path

from ensemble.cli.project import PROJECT_FILE, load_project
from ensemble.core.errors import EnsembleError

__all__ = ['init_project']


def _columns(path: Path) -> list[str]:
    try:
        from ensemble.data.splits import data_format

        fmt = data_format(path)
        if fmt in ("csv", "tsv"):
            with open(path, encoding="utf-8-sig", errors="replace") as f:
                return [c.strip().strip('"') for c in f.readline().rstrip("\r\n").split("," if fmt == "csv" else "\t")]
    except (OSError, EnsembleError):
        pass
    return []


_TEXT_NAMES = ("text", "sentence", "comment", "comments", "document", "dialogue")
_ID_NAMES = ("id", "ID", "Id", "fname", "idx", "guid", "uid")
_LABEL_NAMES = ("label", "labels", "target", "class", "hate")


def _column_lines(columns: dict[str, list[str]]) -> list[str]:
    """The [data] column keys, written only where every data file has the column (a key a file
    lacks would make the commands fail on it); the label only needs the validation file."""
    files = {k: c for k, c in columns.items() if c}
    every = set.intersection(*(set(c) for c in files.values())) if files else set()
    first = next(iter(files.values()), [])
    lines = []
    # the id column by its common names: Kaggle's id, Dacon's ID, AI Stages' fname...
    found = next((c for c in _ID_NAMES if c in every), None)
    some = next((c for c in _ID_NAMES if any(c in cols for cols in files.values())), None)
    if found is not None:
        lines.append(f'id = "{found}"')
    elif some is not None:
        having = " and ".join(f"{k}" for k, c in files.items() if some in c)
        lines.append(f'# id = "{some}"   # only {having} has an id column: the others\' rows are numbered (0, 1, ...)')
    text = next((c for c in first if c.lower() in _TEXT_NAMES and c in every), None)
    if text is not None:
        lines.append(f'text = "{text}"          # or ["sentence1", "sentence2"] for pairs')
    else:
        lines.append('# text = "text"   # no text column found in every data file: name yours (or a pair of them)')
    label = next((c for c in files.get("valid", []) if c.lower() in _LABEL_NAMES), None)
    if label is not None:
        lines.append(f'label = "{label}"   # the validation labels; the test file needs none')
    else:
        lines.append('# label = "label"   # no label column found in the validation file: name it')
    return lines


def _head(folder: Path) -> tuple[str | None, str]:
    """``(why the toolkit cannot run it yet or None, what its head is)`` for the model folder (or
    checkpoint) ``folder``, from its config.json (see :func:`ensemble.io.modelfiles.head_of`)."""
    import json

    from ensemble.io.modelfiles import head_of
    from ensemble.tasks import task_for_head

    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return "its config.json cannot be read", "unknown"
    head = head_of(config if isinstance(config, dict) else {})
    what = head.kind if head.kind != "custom" else f"custom code ({head.architecture})"
    if task_for_head(head) is None:
        from ensemble.tasks import TASKS

        said = [n.replace("_", "-") for n in TASKS]
        return f"{head.describe()}; ensemble runs {', '.join(said[:-1])} and {said[-1]} heads", what
    return None, what


def _task_line(heads: list[str]) -> str:
    """[data] task: the task the listed members' heads (their kinds, as the entries say them)
    share, or a comment naming the tasks when they differ."""
    from ensemble.tasks import DEFAULT_TASK, TASKS

    found = sorted({next((t.name for t in TASKS.values() if h in t.heads), DEFAULT_TASK.name) for h in heads})
    if len(found) == 1:
        return f'task = "{found[0]}"   # detected from the members\' config.json (problem_type, num_labels)'
    if not found:
        others = ", ".join(n for n, t in TASKS.items() if t is not DEFAULT_TASK)
        return f"# task = \"{DEFAULT_TASK.name}\"   # or {others}: no member's head was read"
    return f'# task = "{found[0]}"   # the members\' heads say {", ".join(found)}: an ensemble is of one task'


def _run_head(run_dir: Path) -> tuple[str | None, str]:
    """:func:`_head` of a Trainer run: of its newest checkpoint that has a config.json."""
    from ensemble.averaging.checkpoints import CHECKPOINT_RE

    steps = sorted((int(m.group(1)), c) for c in run_dir.iterdir() if (m := CHECKPOINT_RE.match(c.name)))
    for _, c in reversed(steps):
        if (c / "config.json").is_file():
            return _head(c)
    return None, "unknown (no config.json in its checkpoints)"


def _not_a_member(folder: Path) -> str | None:
    """Why a model folder is not an ensemble member (a head the toolkit does not run yet, or
    never fine-tuned), or None. Fine-tuned folders hold a Trainer's trainer_state.json or
    training_args.bin (never read: a pickle), or ensemble's manifest of an average."""
    why, _ = _head(folder)
    if why:
        return why
    if not any((folder / n).is_file() for n in ("trainer_state.json", "training_args.bin", "ensemble_manifest.json")):
        return ("no trainer_state.json, training_args.bin or ensemble_manifest.json: a base model, not fine-tuned; "
                "uncomment if it is a trained classifier")
    return None


_FOLD_RE = re.compile(r"fold[-_]?(\d+)", re.IGNORECASE)
_REFIT_SUFFIXES = ("-full", "_full", "-refit", "_refit", "-all", "_all")


def _fold_groups(rels: list[Path]) -> tuple[dict[str, tuple[str, int]], list[Path]]:
    """Folders whose paths differ only in a fold number (``runs/bert-fold0``..``runs/bert-fold4``)
    as fold groups, {name: (path with {fold}, K)}, when folds 0..K-1 are all there (K >= 2); the
    other folders as they are."""
    from ensemble.workflows.members import FOLD

    by_template: dict[str, dict[int, Path]] = {}
    for rel in rels:
        path = rel.as_posix()
        m = _FOLD_RE.search(path)
        if m:  # the fold number, and only it, becomes {fold}
            by_template.setdefault(path[:m.start(1)] + FOLD + path[m.end(1):], {})[int(m.group(1))] = rel
    groups, grouped = {}, set()
    for template, folds in by_template.items():
        if len(folds) >= 2 and set(folds) == set(range(len(folds))):
            part = next(x for x in template.split("/") if FOLD in x)
            name = re.sub(r"[-_]*fold[-_]?\{fold\}[-_]*", "-", part, flags=re.IGNORECASE).strip("-_") or "folds"
            groups[re.sub(r"[^\w.+-]", "-", name)] = (template, len(folds))
            grouped.update(folds.values())
    return groups, [r for r in rels if r not in grouped]


def _fold_data_lines(root: Path, data: dict, groups: dict) -> list[str]:
    """[data] train and folds for fold groups: the files found, else commented hints."""
    ks = sorted({k for _, k in groups.values()})
    k = ks[-1]
    each = ", ".join(f"{g} ({n} folds)" for g, (_, n) in groups.items())
    lines = [f"# fold groups, fitted on the training file's out-of-fold rows: {each}"
             + ("; fold groups of one ensemble are trained on the same folds: keep those of one K" if len(ks) > 1 else "")]
    lines.append(f'train = "{data["train"].as_posix()}"' if "train" in data else '# train = "data/train.csv"   # the file '
                 "the fold models were trained on")
    if "folds" in data:
        cols = _columns(root / data["folds"])
        lines.append(f'folds = "{data["folds"].as_posix()}"' + (f"   # columns: {', '.join(cols)}" if cols else ""))
        if "fold" not in cols and "kfold" not in cols:
            lines.append('# fold_column = "..."   # the folds file\'s fold column')
    else:
        lines.append(f'# folds = "data/folds.csv"   # id,fold: the folds the models were trained on (ensemble folds make '
                     f'data/train.csv --k {k} writes one; use the one your training used)')
    return lines


def _refit_of(name: str, groups) -> str | None:
    """The fold group a folder named ``<group>-full`` (``-refit``, ``-all``) was refitted for."""
    return next((g for g in groups for sfx in _REFIT_SUFFIXES if name == g + sfx), None)


def _scan(root: Path) -> tuple[list[Path], list[Path], dict, list[Path]]:
    """(runs, model folders, data files by key, sweeps) found under ``root``, 4 levels deep."""
    from ensemble.averaging.checkpoints import CHECKPOINT_RE
    from ensemble.averaging.sweeps import is_search
    from ensemble.io.modelfiles import has_weights

    skip = {".ensemble", ".git", ".venv", "node_modules", "__pycache__"}
    runs, models, data, sweeps = [], [], {}, []
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if any(part in skip or part.startswith(".") for part in rel.parts) or len(rel.parts) > 4:
            continue
        if any(rel.parts[:len(s.parts)] == s.parts for s in sweeps):
            continue  # a trial of a sweep found above
        if path.is_dir() and not CHECKPOINT_RE.match(path.name):
            if is_search(path):
                sweeps.append(rel)
            elif any(CHECKPOINT_RE.match(c.name) for c in path.iterdir() if c.is_dir()):
                runs.append(rel)
            elif (path / "config.json").is_file() and has_weights(path) and not CHECKPOINT_RE.match(path.parent.name):
                models.append(rel)
        elif path.is_file() and path.suffix.lower() in (".csv", ".tsv", ".jsonl", ".parquet"):
            stem = path.stem.lower()
            for key, names in (("folds", ("fold",)), ("sample_submission", ("sample_submission", "submission")),
                               ("valid", ("valid", "validation", "dev", "val")), ("test", ("test",)),
                               ("train", ("train",))):
                if key not in data and any(n in stem for n in names):
                    data[key] = rel
                    break
    return runs, models, data, sweeps


def _run_line(root: Path, rel: Path, name: str, groups: dict, bases: list[Path]) -> tuple[str, str | None]:
    """A run's [runs] line for init, and its head's kind (None when it is left out): its head, its
    refit, and its tokenizer when its checkpoints hold none (the one base model folder found here,
    of ``bases``, else a hint naming them)."""
    from ensemble.averaging.checkpoints import CHECKPOINT_RE
    from ensemble.io.modelfiles import has_tokenizer

    run_dir = root / rel
    tok = has_tokenizer(run_dir) or any(has_tokenizer(c) for c in run_dir.iterdir() if CHECKPOINT_RE.match(c.name))
    hint, tokenizer = "", ""
    if not tok and len(bases) == 1:  # the one base model folder here: its tokenizer
        tokenizer = f', tokenizer = "{bases[0].as_posix()}"'
        hint = f"   # no tokenizer files in the run: the base model folder {bases[0].as_posix()}'s"
    elif not tok:
        listed = " or ".join(f'"{b.as_posix()}"' for b in bases[:3]) or '"<base model folder>"'
        hint = f"   # no tokenizer files: add tokenizer = {listed}"
    refit = _refit_of(name, groups)
    refit = f', refit_of = "{refit}"' if refit else ""
    why, what = _run_head(run_dir)
    entry = f'{name} = {{ path = "{rel.as_posix()}", k = 4{refit}{tokenizer} }}'
    if why:
        return f"# {entry}   # left out: {why}", None
    return f"{entry}   # head: {what}{hint.replace('   #', ';')}", what


def init_project(folder: str | os.PathLike = ".", force: bool = False) -> Path:
    """Write a commented ``ensemble.toml`` in ``folder`` from what is there: Trainer runs
    (folders holding ``checkpoint-N``), model folders (``config.json`` and weights), and data
    files named like valid / test / sample_submission, with their columns. Runs or model folders
    numbered by fold (``runs/bert-fold0``..) are a fold group, one member (with ``train`` and
    ``folds`` in [data]); a ``runs/bert-full`` beside them is its full-data refit."""
    from ensemble.workflows.members import FOLD

    root = Path(folder).resolve()
    out = root / PROJECT_FILE
    if out.exists() and not force:
        raise EnsembleError(f"{out}: already exists; edit it, or pass --force to write a new one")
    runs, models, data, sweeps = _scan(root)
    # model folders inside a run (its checkpoints, a saved final model) or written by ensemble are not members
    models = [m for m in models if m.parts[0] != "weights" and not any(m.parts[:len(r.parts)] == r.parts for r in runs)]
    run_groups, runs = _fold_groups(runs)
    model_groups, models = _fold_groups(models)
    groups = {**run_groups, **model_groups}
    lines = ["# ensemble.toml: the data and the models, named once for every ensemble command.",
             "# Paths are relative to this file. Written by `ensemble init`; edit freely.", "", "[data]"]
    if groups:  # fold groups fit on the training file's out-of-fold rows
        lines += _fold_data_lines(root, data, groups)
    for key in ("valid", "test", "sample_submission"):
        if key in data:
            cols = _columns(root / data[key])
            lines.append(f'{key} = "{data[key].as_posix()}"' + (f"   # columns: {', '.join(cols)}" if cols else ""))
        else:
            lines.append(f'# {key} = "data/{key}.csv"')
    lines += _column_lines({k: _columns(root / v) for k, v in data.items() if k in ("valid", "test")}) + [""]
    lines += ["# Trainer runs that `ensemble run` averages into weights/<name>-top<k>", "[runs]"]
    from ensemble.io.modelfiles import has_tokenizer

    # base model folders (a tokenizer, never fine-tuned): where a run without tokenizer files takes one
    bases = [m for m in models if has_tokenizer(root / m) and _not_a_member(root / m)]
    names = set(groups)
    heads = []  # the heads of the members listed: [data] task is the one they share
    for name, (template, k) in run_groups.items():
        why, what = _run_head(root / template.replace(FOLD, "0"))
        entry = f'{name} = {{ path = "{template}", k = 4 }}   # a fold group: {k} fold runs, each averaged; head: {what}'
        lines.append(f"# {entry.split('   #')[0]}   # left out: {why}" if why else entry)
        heads += [] if why else [what]
    for rel in runs:
        name = re.sub(r"[^\w.+-]", "-", rel.name) or "run"
        while name in names:
            name += "-2"
        names.add(name)
        line, what = _run_line(root, rel, name, groups, bases)
        lines.append(line)
        heads += [what] if what else []
    lines += ["", "# Ready model folders (trained_on_valid = true for a model trained on train+valid)", "[models]"]
    for name, (template, k) in model_groups.items():
        lines.append(f'{name} = "{template}"   # a fold group of {k} model folders')
    for rel in sweeps:
        name = re.sub(r"[^\w.+-]", "-", rel.name) or "sweep"
        while name in names:
            name += "-2"
        names.add(name)
        trials = sum(1 for c in (root / rel).iterdir() if c.is_dir())
        lines.append(f'{name} = "{rel.as_posix()}@top3"   # a sweep of {trials} trials: the best checkpoint of each '
                     'of the 3 best (ensemble sweep ls)')
    for rel in models:  # those inside a run or under weights/ were left out above
        name = re.sub(r"[^\w.+-]", "-", rel.name) or "model"
        while name in names:
            name += "-2"
        names.add(name)
        why = _not_a_member(root / rel)
        refit = _refit_of(name, groups)
        entry = f'{{ path = "{rel.as_posix()}", refit_of = "{refit}" }}' if refit else f'"{rel.as_posix()}"'
        lines.append(f'# {name} = "{rel.as_posix()}"   # left out: {why}' if why else f'{name} = {entry}')
        heads += [] if why else [_head(root / rel)[1]]
    heads += [_head(root / template.replace(FOLD, "0"))[1] for template, _ in model_groups.values()]
    lines.insert(lines.index("[data]") + 1, _task_line(heads))
    lines += ["", "[vote]", 'weights = "auto"   # a fitted method only when its cross-validated gain over uniform is sure']
    if "train" in data and not groups:  # the training labels: the class prior a class-prior adjustment aims at
        lines.append(f'# adjust = "auto"\n# prior = "{data["train"].as_posix()}"   # the training labels as the target class '
                     "prior of a class-prior adjustment (ensemble report estimates whether it helps)")
    lines.append("")
    out.write_text("\n".join(lines), encoding="utf-8")
    load_project(out)  # what was written must read back
    return out
