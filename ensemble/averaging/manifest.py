"""The manifest beside every average (what it was built from, with which settings), the files
loading needs copied beside the weights, and whether an average is stale."""

from __future__ import annotations

import json
import logging
import os
import platform
import shutil
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Sequence

from ensemble import __version__
from ensemble.averaging.checkpoints import Checkpoint
from ensemble.core.errors import EnsembleError
from ensemble.io.hashing import HASH_NAME, file_digest
from ensemble.io.modelfiles import MODEL_FILES, PROCESSOR_FILES, PROCESSOR_FOLDERS, TOKENIZER_FILES, code_files

log = logging.getLogger(__name__)
from ensemble.averaging.reading import WeightSet, check_configs
from ensemble.averaging.selection import Selection, find_tokenizer, parse_k, select_checkpoints

__all__ = ['stale_average', 'manifest_path', 'MANIFEST_NAME']

MANIFEST_NAME = "ensemble_manifest.json"
MANIFEST_SCHEMA = "ensemble.average/1"
_PICKLE_FILES = ("optimizer.pt", "scheduler.pt", "training_args.bin")  # never loaded


# --------------------------------------------------------------------------- manifest


def _versions() -> dict[str, str]:
    out = {"ensemble": __version__, "python": platform.python_version()}
    for dist in ("numpy", "torch", "transformers", "safetensors"):
        try:
            out[dist] = importlib_metadata.version(dist)
        except importlib_metadata.PackageNotFoundError:
            pass
    return out


def _relative(path, out: Path) -> str:
    """``path`` relative to the averaged folder ``out``, so that a manifest (and the weights file
    whose header embeds it) stays the same when the project is copied or moved."""
    return Path(os.path.relpath(Path(path).resolve(), out.resolve())).as_posix()


def manifest_path(out: str | os.PathLike, value: str) -> Path:
    """A path recorded in ``out``'s manifest, as an absolute path (relative ones are relative to
    ``out``; manifests written before 0.1 hold absolute paths)."""
    return (Path(out) / value).resolve()


def manifest_of(selection: Selection, sets: Sequence[WeightSet], hashes: dict[Path, str] | None,
              accumulate: str, tokenizer_from: Path, out: Path, search: dict | None = None,
              settings: dict | None = None) -> dict:
    """What an averaged folder records: the selection, the checkpoints' file digests, the
    settings. Paths are relative to ``out``; nothing depends on the time or the machine, so the
    same checkpoints averaged with the same settings give the same bytes (and the same cache
    keys) wherever the project lies."""
    ranking = selection.ranking
    metric = ranking.metric if ranking else None

    def rel(path) -> str:
        return _relative(path, out)

    def files(ws: WeightSet) -> list[dict]:
        return [{"name": f.path.name, "size": f.path.stat().st_size,
                 HASH_NAME: hashes[f.path] if hashes else "0" * 64} for f in ws.files]

    chosen = {c.path for c in selection.chosen}
    search = search or {}
    return {
        "schema": MANIFEST_SCHEMA,
        "method": search.get("method", "uniform"),
        "k": len(selection.chosen),
        "metric": metric,
        "greater_is_better": ranking.greater_is_better if ranking else None,
        # The checkpoints were chosen by the Trainer's eval metric: a score of this average on
        # that same eval set is optimistic (read by the report).
        "selected_on_eval_set": ranking is not None,
        # A greedy soup or a K chosen by the score on a held-out split: that split's score of the
        # result is optimistic too, and must not be reported as an estimate.
        "selected_on_holdout": bool(search),
        "holdout": {**search["holdout"], "path": rel(search["holdout"]["path"])} if search.get("holdout") else None,
        "search": search.get("trials"),
        "run": rel(selection.run_dir) if selection.run_dir else None,
        # across the trials of a sweep: every trial with its parameters (ranked best first)
        "sweep": _sweep_paths(selection.sweep.to_dict(), rel) if selection.sweep is not None else None,
        "checkpoints": [
            {"path": rel(c.path), "step": c.step,
             "metric_value": c.metrics.get(metric) if metric else None, "files": files(ws),
             **_trial_fields(selection, c)}
            for c, ws in zip(selection.chosen, sets)
        ],
        "candidates": [
            {"step": c.step, "metric_value": c.metrics.get(metric), "chosen": c.path in chosen,
             **_trial_fields(selection, c, params=False)}
            for c in (ranking.ranked + ranking.skipped if ranking else ())
        ],
        "accumulate_dtype": accumulate,
        "settings": settings,
        "config_from": rel(selection.chosen[0].path),
        "tokenizer_from": rel(tokenizer_from),
        "paths_relative_to": "this folder",
        "versions": _versions(),
    }


def _sweep_paths(sweep: dict, rel) -> dict:
    return {**sweep, "root": rel(sweep["root"]), "trials": [{**t, "path": rel(t["path"])} for t in sweep["trials"]]}


def _trial_fields(selection: Selection, c: Checkpoint, params: bool = True) -> dict:
    trial = selection.trial_of(c)
    if trial is None:
        return {}
    return {"trial": trial.name, **({"trial_params": dict(trial.params)} if params else {})}


def safetensors_metadata(manifest: dict) -> dict[str, str]:
    return {"format": "pt", "ensemble_manifest": json.dumps(manifest, sort_keys=True)}


def loading_files(config_dir: Path, tok_dir: Path, trust_remote_code: bool = False) -> dict[str, Path]:
    """Every file besides the weights that loading the average needs, by its name in the output:
    ``config.json`` and ``generation_config.json`` of the best checkpoint, the tokenizer, processor
    and chat-template files, and the code that ``auto_map`` names (its module files, with
    ``trust_remote_code``; without it such a folder is refused: its average could not be loaded,
    or would load another class). Optimizer, scheduler and RNG states and ``training_args.bin``
    are never among them."""
    files = {n: config_dir / n for n in ("config.json", *MODEL_FILES) if (config_dir / n).is_file()}
    files.update({n: tok_dir / n for n in (*TOKENIZER_FILES, *PROCESSOR_FILES) if (tok_dir / n).is_file()})
    for sub in PROCESSOR_FOLDERS:
        if (tok_dir / sub).is_dir():
            files.update({p.relative_to(tok_dir).as_posix(): p for p in sorted((tok_dir / sub).rglob("*")) if p.is_file()})
    for folder, config in ((config_dir, "config.json"), (tok_dir, "tokenizer_config.json")):
        modules, code = code_files(folder, config)
        if not modules:
            continue
        if not trust_remote_code:
            from ensemble.core.errors import option

            raise EnsembleError(f"{folder / config}: auto_map names code shipped with the model ({', '.join(modules)}); "
                                f"the average needs it to load: {option('trust_remote_code')} to copy it (and let "
                                "transformers run it), once you trust it")
        missing = [m for m in modules if "--" not in m and not (folder / f"{m}.py").is_file()]
        if missing:
            raise EnsembleError(f"{folder / f'{missing[0]}.py'}: named by auto_map in {config} but missing; copy the "
                                "model's code files into the checkpoint")
        files.update({p.name: p for p in code})
    return files


def copy_loading_files(files: dict[str, Path], dst: Path) -> None:
    for name, src in files.items():
        (dst / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dst / name)


def average_settings(method: str, k, selection: Selection, accumulate_dtype: str, holdout, exclude_trials) -> dict:
    """The options an average was built with, as its manifest records them: what must be equal
    for an existing folder to be the same average."""
    searched = method == "greedy" or k == "auto" or isinstance(k, tuple)
    return {"method": method, "k": (list(k) if isinstance(k, tuple) else k) if searched else len(selection.chosen),
            "accumulate_dtype": accumulate_dtype, "holdout": holdout.digest if holdout is not None else None,
            "exclude_trials": sorted(exclude_trials or ())}


def _key(c: Checkpoint, selection: Selection) -> list:
    trial = selection.trial_of(c)
    return [trial.name if trial is not None else None, c.step]


def stale_reason(out: str | os.PathLike, selection: Selection, settings: dict, tokenizer_dir: Path,
                 file_digest=file_digest, searched: bool = False, copied: dict[str, Path] | None = None) -> str | None:
    """None when ``out`` holds the average of ``selection`` built with ``settings``; else why not.

    Content decides, never paths or times: every chosen checkpoint's files must have the digests
    the manifest recorded, the averaged weights the digests written, and the tokenizer must come
    from the same folder relative to ``out``. For a searched average (greedy soup, a K chosen on
    a holdout) ``selection`` holds the candidates: their steps and metric values must be those
    recorded, and the chosen ones among them must be unchanged. ``copied`` (see
    :func:`loading_files`): the files besides the weights, each equal to its source now.
    """
    out = Path(out)
    try:
        m = json.loads((out / MANIFEST_NAME).read_text(encoding="utf-8"))
        listed = [([c.get("trial"), c["step"]], c["files"]) for c in m["checkpoints"]]
        recorded_candidates = [[c.get("trial"), c["step"], c.get("metric_value")] for c in m["candidates"]]
    except (OSError, ValueError, KeyError, TypeError):
        return f"it holds no readable {MANIFEST_NAME}"
    if m.get("settings") != settings:
        return "it was averaged with other settings"
    metric = selection.ranking.metric if selection.ranking else None
    ranking = selection.ranking
    current = [[*_key(c, selection), c.metrics.get(metric)] for c in (ranking.ranked + ranking.skipped)] if ranking else []
    if recorded_candidates != current:
        return "the run's checkpoints or their metrics changed"
    by_key = {tuple(_key(c, selection)): c for c in selection.chosen}
    if not searched and [list(k) for k in by_key] != [k for k, _ in listed]:
        return "other checkpoints are chosen now"
    for key, files in listed:
        ck = by_key.get(tuple(key))
        if ck is None:
            return f"checkpoint {key[1]} is gone"
        for f in files:
            path = ck.path / f["name"]
            if not path.is_file() or file_digest(path) != f[HASH_NAME]:
                return f"{path} changed since it was averaged"
    for name, digest in (m.get("outputs") or {}).items():
        if not (out / name).is_file() or file_digest(out / name) != digest:
            return f"its {name} is not the file that was written"
    if m.get("tokenizer_from") != _relative(tokenizer_dir, out):
        return "its tokenizer came from another folder"
    for name, src in (copied or {}).items():  # config, generation config, tokenizer, code: as they are now
        if not (out / name).is_file() or file_digest(out / name) != file_digest(src):
            return f"its {name} differs from {src}"
    return None


def stale_average(out: str | os.PathLike, run_or_paths, k: int | None = None, metric: str | None = None, *,
                  tokenizer: str | os.PathLike | None = None, accumulate_dtype: str = "float32",
                  across_trials: bool = False, exclude_trials: Sequence[str] = (), file_digest=file_digest,
                  greater_is_better: bool | None = None, trust_remote_code: bool = False) -> str | None:
    """Why ``out`` is not the uniform average that :func:`average_checkpoints` would write with
    these arguments ("it does not exist", "other checkpoints are chosen now", ...), or None when
    it is, judged by content alone: a copied or moved project is still up to date."""
    out = Path(out)
    if not out.exists():
        return "it does not exist"
    selection = select_checkpoints(run_or_paths, k, metric, greater_is_better, across_trials=across_trials,
                                   exclude_trials=exclude_trials)
    tok_dir = find_tokenizer(selection, check_configs([c.path for c in selection.chosen]), tokenizer)
    settings = average_settings("uniform", parse_k(k), selection, accumulate_dtype, None, exclude_trials)
    copied = loading_files(selection.chosen[0].path, tok_dir, trust_remote_code)
    return stale_reason(out, selection, settings, tok_dir, file_digest, copied=copied)
