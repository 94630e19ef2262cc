"""Average the weights of the top-K checkpoints of a run into one loadable model folder.

The average streams: tensor by tensor, in chunks of about a million elements, each checkpoint's
bytes are read at the offsets its safetensors header gives, upcast and summed in float32 (or
float64), divided by K and written back in the checkpoint's dtype. Peak memory is a few chunk
buffers, whatever the model's size. Integer and bool tensors (``position_ids`` buffers of 4.x
checkpoints) are copied from the first checkpoint after checking that every checkpoint holds
the same values. Keys, dtypes and shapes must agree across checkpoints, as must the config's
architecture and label map: a difference is an error naming the tensor or the field.

The output folder is built beside its target under a temporary name and renamed into place at
the end, so that an interrupted run never leaves a folder that looks finished.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import platform
import shutil
import time
import uuid
from dataclasses import dataclass
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from . import __version__
from .checkpoints import (
    CHECKPOINT_RE,
    Checkpoint,
    Ranking,
    newest_state,
    rank_checkpoints,
    rank_run,
    read_checkpoint,
)
from .errors import EnsembleError
from .hashing import HASH_NAME, StreamHasher, file_digest
from .modelfiles import (
    MODEL_FILES,
    PROCESSOR_FILES,
    PROCESSOR_FOLDERS,
    TOKENIZER_FILES,
    code_files,
    has_tokenizer,
    has_weights,
    load_torch_bin,
    read_config,
)
from .tensorio import (
    DTYPES,
    FLOAT_DTYPES,
    SafetensorsFile,
    SafetensorsWriter,
    TensorInfo,
    from_float,
    iter_chunks,
    to_float,
)

__all__ = ["average_checkpoints", "select_checkpoints", "stale_average", "manifest_path", "remove_leftovers",
           "Selection", "MANIFEST_NAME", "parse_k"]

log = logging.getLogger(__name__)

MANIFEST_NAME = "ensemble_manifest.json"
MANIFEST_SCHEMA = "ensemble.average/1"
# Elements per chunk: 256K elements is 1 MiB of float32 accumulator, small enough to stay in
# the CPU cache while K chunks are summed into it (measured faster here than 1M or 4M).
CHUNK_ELEMENTS = 1 << 18
# Config fields that must agree for weights to be averaged meaningfully.
_CONFIG_KEYS = ("model_type", "architectures", "id2label")
_PICKLE_FILES = ("optimizer.pt", "scheduler.pt", "training_args.bin")  # never loaded


# --------------------------------------------------------------------------- selection


@dataclass(frozen=True)
class Selection:
    """Which checkpoints to average and why.

    Attributes
    ----------
    chosen : tuple of Checkpoint
        Best first.
    ranking : Ranking or None
        The ranking they were chosen from; None for explicit folders given without ``k``.
    run_dir : Path or None
        The run folder, when one was given.
    """

    chosen: tuple[Checkpoint, ...]
    ranking: Ranking | None
    run_dir: Path | None
    sweep: object | None = None  # a Sweep when checkpoints were ranked across its trials

    def trial_of(self, checkpoint: Checkpoint):
        return self.sweep.trial_of(checkpoint) if self.sweep is not None else None

    @property
    def name(self) -> str:
        """The run's name: the run folder, or the parent of the first checkpoint."""
        return (self.run_dir or self.chosen[0].path.parent).resolve().name


def _is_run_folder(path: Path) -> bool:
    return path.is_dir() and not CHECKPOINT_RE.match(path.name) and any(
        CHECKPOINT_RE.match(p.name) for p in path.iterdir() if p.is_dir()
    )


def _count(k, ranking: Ranking, default: int) -> int:
    """How many of the ranking to keep: ``k``, every ranked one for "all", ``default`` for None."""
    return default if k is None else len(ranking.ranked) if k == "all" else k


def select_checkpoints(
    run_or_paths: str | os.PathLike | Sequence[str | os.PathLike],
    k: int | None = None,
    metric: str | None = None,
    greater_is_better: bool | None = None,
    *,
    across_trials: bool = False,
    exclude_trials: Sequence[str] = (),
) -> Selection:
    """Choose the checkpoints to average.

    Parameters
    ----------
    run_or_paths : path or sequence of paths
        A ``Trainer`` output folder holding ``checkpoint-N`` folders, or checkpoint folders.
    k : int or "all", optional
        How many of the best to keep. Default: 4 for a run folder; every folder given when
        checkpoint folders are listed (with ``k``, the best ``k`` of them by ``metric``).
        "all": every checkpoint that logged the metric, ranked.
    metric, greater_is_better
        See :func:`ensemble.checkpoints.rank_checkpoints`.
    across_trials : bool, default False
        ``run_or_paths`` is a sweep (a folder of trial run folders, as
        ``Trainer.hyperparameter_search`` writes): rank the checkpoints of every trial together.
        Trials whose architecture, tensor shapes or label map differ are refused.
    exclude_trials : sequence of str
        With ``across_trials``: trial folder names to leave out.
    """
    if across_trials:
        from .sweep import find_sweep

        if not isinstance(run_or_paths, (str, os.PathLike)):
            raise EnsembleError("--across-trials takes one sweep folder (the hyperparameter search's output_dir)")
        sweep = find_sweep(run_or_paths, metric, greater_is_better, exclude=exclude_trials)
        check_trials(sweep)
        ranking = sweep.ranking
        return Selection(ranking.top(_count(k, ranking, 4)), ranking, sweep.root, sweep)
    if exclude_trials:
        raise EnsembleError("--exclude-trial is used only with --across-trials; drop it")
    paths = [Path(run_or_paths)] if isinstance(run_or_paths, (str, os.PathLike)) else [
        Path(p) for p in run_or_paths
    ]
    if not paths:
        raise EnsembleError("no run folder or checkpoint folders given; pass at least one")
    if len(paths) == 1 and not _is_run_folder(paths[0]) and not has_weights(paths[0]):
        from .sweep import is_sweep

        if is_sweep(paths[0]):
            raise EnsembleError(f"{paths[0]}: is a sweep (a folder of trial runs); pass --across-trials to rank the "
                                "checkpoints of every trial together, or one trial's folder")
    if len(paths) == 1 and _is_run_folder(paths[0]):
        ranking = rank_run(paths[0], metric, greater_is_better)
        return Selection(ranking.top(_count(k, ranking, 4)), ranking, paths[0])
    for p in paths:
        if not p.is_dir():
            raise EnsembleError(f"{p}: not a folder; pass a Trainer run folder or checkpoint folders")
        if not has_weights(p):
            if len(paths) == 1:
                raise EnsembleError(
                    f"{p}: no checkpoint-N folders and no model weights; "
                    "pass the Trainer's output_dir or checkpoint folders"
                )
            raise EnsembleError(f"{p}: no model.safetensors or pytorch_model.bin; is it a checkpoint folder?")
    if len({p.resolve() for p in paths}) != len(paths):
        raise EnsembleError("the same checkpoint folder is listed twice; list each once")
    checkpoints = [read_checkpoint(p) for p in paths]
    if k is None and metric is None:
        return Selection(tuple(checkpoints), None, None)
    ranking = rank_checkpoints(checkpoints, metric, greater_is_better, state=newest_state(checkpoints))
    return Selection(ranking.top(_count(k, ranking, len(checkpoints))), ranking, None)


# --------------------------------------------------------------------------- weight sources


class _TorchBinFile:
    """A legacy ``pytorch_model.bin`` read with ``torch.load(weights_only=True)``, never unpickled."""

    _DTYPES = {"float64": "F64", "float32": "F32", "float16": "F16", "bfloat16": "BF16",
               "int64": "I64", "int32": "I32", "int16": "I16", "int8": "I8", "uint8": "U8", "bool": "BOOL"}

    def __init__(self, path: Path):
        import torch

        self.path = path
        sd = load_torch_bin(path)
        self._tensors = {}
        self.tensors = {}
        for name, t in sd.items():
            dtype = self._DTYPES.get(str(t.dtype).removeprefix("torch."))
            if dtype is None:
                raise EnsembleError(f"{path}: tensor {name!r} has unsupported dtype {t.dtype}")
            t = t.detach().contiguous().reshape(-1)
            self._tensors[name] = t.view(torch.int16) if dtype == "BF16" else t
            self.tensors[name] = TensorInfo(name, dtype, tuple(sd[name].shape), 0, t.numel() * DTYPES[dtype][1])

    def read(self, info: TensorInfo, start: int, count: int, buf: bytearray) -> np.ndarray:
        arr = self._tensors[info.name][start:start + count].numpy()
        return arr.view(DTYPES[info.dtype][0])

    def close(self) -> None:
        self._tensors.clear()


@dataclass
class _WeightSet:
    """Every tensor of one checkpoint: name -> (file reader, TensorInfo), plus its shard layout."""

    folder: Path
    files: list  # SafetensorsFile | _TorchBinFile
    where: dict
    layout: list[tuple[str, list[str]]]  # output file name -> tensor names in data order

    def close(self) -> None:
        for f in self.files:
            f.close()


def _load_index(path: Path) -> dict[str, str]:
    try:
        with open(path, encoding="utf-8") as f:
            weight_map = json.load(f)["weight_map"]
        if not isinstance(weight_map, dict):
            raise TypeError
    except (OSError, ValueError, KeyError, TypeError):
        raise EnsembleError(f"{path}: not a valid shard index (needs a weight_map); re-save the model") from None
    return weight_map


def _open_weights(folder: Path) -> _WeightSet:
    for index_name, single, reader in (
        ("model.safetensors.index.json", "model.safetensors", SafetensorsFile),
        ("pytorch_model.bin.index.json", "pytorch_model.bin", _TorchBinFile),
    ):
        if (folder / index_name).is_file():
            weight_map = _load_index(folder / index_name)
            shard_names = list(dict.fromkeys(weight_map.values()))
        elif (folder / single).is_file():
            weight_map, shard_names = None, [single]
        else:
            continue
        files, where, layout = [], {}, []
        try:
            for shard in shard_names:
                if Path(shard).name != shard:
                    raise EnsembleError(f"{folder / index_name}: shard name {shard!r} is not a plain file name")
                if not (folder / shard).is_file():
                    raise EnsembleError(f"{folder / shard}: shard listed in the index is missing; re-copy the checkpoint")
                f = reader(folder / shard)
                files.append(f)
                names = list(f.tensors)
                if weight_map is not None:
                    listed = {n for n, s in weight_map.items() if s == shard}
                    if set(names) != listed:
                        diff = sorted(set(names) ^ listed)[0]
                        raise EnsembleError(f"{folder / shard}: tensor {diff!r} disagrees with the shard index; re-save the model")
                for n in names:
                    where[n] = (f, f.tensors[n])
                out_name = shard if reader is SafetensorsFile else shard.replace("pytorch_model", "model").replace(".bin", ".safetensors")
                layout.append((out_name, names))
        except BaseException:
            for f in files:
                f.close()
            raise
        return _WeightSet(folder, files, where, layout)
    raise EnsembleError(
        f"{folder}: no model.safetensors, sharded index or pytorch_model.bin; is the checkpoint complete?"
    )


def _check_configs(folders: Sequence[Path]) -> dict:
    configs = [read_config(f) for f in folders]
    for key in _CONFIG_KEYS:
        ref = configs[0].get(key)
        for folder, cfg in zip(folders[1:], configs[1:]):
            if cfg.get(key) != ref:
                raise EnsembleError(
                    f"{folder / 'config.json'}: {key} is {cfg.get(key)!r} but {ref!r} in "
                    f"{folders[0] / 'config.json'}; only checkpoints of one model can be averaged"
                )
    return configs[0]


def _check_compatible(sets: Sequence[_WeightSet], prefix: str = "",
                      fix: str = "only checkpoints of one model can be averaged") -> None:
    """Every set holds the first one's tensor names, dtypes and shapes; the error names the
    tensor and the folders, after ``prefix`` and before ``fix``."""
    ref = sets[0]
    for other in sets[1:]:
        if set(other.where) != set(ref.where):
            name = sorted(set(other.where) ^ set(ref.where))[0]
            has, lacks = (other, ref) if name in other.where else (ref, other)
            raise EnsembleError(f"{prefix}{has.folder}: has tensor {name!r} that {lacks.folder} lacks; {fix}")
        for name, (_, a) in ref.where.items():
            b = other.where[name][1]
            if (a.dtype, a.shape) != (b.dtype, b.shape):
                raise EnsembleError(
                    f"{prefix}{other.folder}: tensor {name!r} is {b.dtype}{list(b.shape)} but "
                    f"{a.dtype}{list(a.shape)} in {ref.folder}; {fix}"
                )


def check_trials(sweep) -> None:
    """Refuse a sweep whose trials cannot be averaged together: each trial's best checkpoint
    (or newest, when it logged no metric) must match the first trial's architecture, label map,
    tensor names, dtypes and shapes. The error names the trial."""
    picks = []
    for t in sweep.trials:
        best = sweep.best_checkpoint(t)
        picks.append((t, best.path if best is not None else t.checkpoints[-1].path))
    ref_trial, ref_path = picks[0]
    ref_cfg = read_config(ref_path)
    ref_set = _open_weights(ref_path)
    hint = f"leave it out with --exclude-trial {{}} (sweep {sweep.root})"
    try:
        for trial, path in picks[1:]:
            cfg = read_config(path)
            for key in _CONFIG_KEYS:
                if cfg.get(key) != ref_cfg.get(key):
                    raise EnsembleError(f"{path / 'config.json'}: trial {trial.name}'s {key} is {cfg.get(key)!r} but "
                                        f"{ref_cfg.get(key)!r} in trial {ref_trial.name}; " + hint.format(trial.name))
            ws = _open_weights(path)
            try:
                _check_compatible([ref_set, ws], f"trial {trial.name} differs from trial {ref_trial.name}: ",
                                  hint.format(trial.name))
            finally:
                ws.close()
    finally:
        ref_set.close()


# --------------------------------------------------------------------------- tokenizer


def _find_tokenizer(selection: Selection, config: dict, tokenizer: str | os.PathLike | None) -> Path:
    if tokenizer is not None:
        t = Path(tokenizer)
        if not has_tokenizer(t):
            raise EnsembleError(f"{t}: no tokenizer files (tokenizer.json, tokenizer_config.json, vocab.txt...); "
                                "pass the folder the tokenizer was saved to")
        return t
    candidates = [c.path for c in selection.chosen]
    if selection.sweep is not None:  # the trial folders, then the sweep's
        candidates += list(dict.fromkeys(c.path.parent for c in selection.chosen))
    if selection.run_dir is not None:
        candidates.append(selection.run_dir)
    else:
        candidates.append(selection.chosen[0].path.parent)
    base = config.get("_name_or_path")
    if isinstance(base, str) and base and Path(base).is_dir():
        candidates.append(Path(base))
    for c in candidates:
        if has_tokenizer(c):
            return c
    raise MissingTokenizer(selection.chosen[0].path)


class MissingTokenizer(EnsembleError):
    """No tokenizer in a run's checkpoints or folder; ``checkpoint`` is the best one. The project
    runner says which key of ensemble.toml fixes it, the CLI and the library which option."""

    PROBLEM = "no tokenizer in the checkpoints or the run folder"

    def __init__(self, checkpoint: Path):
        from .errors import option

        self.checkpoint = checkpoint
        super().__init__(f"{checkpoint}: {self.PROBLEM}; {option('tokenizer', '<base model folder>')}")


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


def _manifest(selection: Selection, sets: Sequence[_WeightSet], hashes: dict[Path, str] | None,
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

    def files(ws: _WeightSet) -> list[dict]:
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


def _st_metadata(manifest: dict) -> dict[str, str]:
    return {"format": "pt", "ensemble_manifest": json.dumps(manifest, sort_keys=True)}


# --------------------------------------------------------------------------- averaging


def _progress(total: int, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc="averaging",
                disable=not enabled, leave=False)


@dataclass(frozen=True)
class _Step:
    """One chunk of one tensor: elements ``[start, start + count)`` of ``name``."""

    name: str
    start: int
    count: int


class _Streamer:
    """Reads the same chunk of every checkpoint on two reader threads, one chunk ahead of the
    arithmetic, and feeds each source file's hasher with the bytes it reads."""

    def __init__(self, sets: Sequence[_WeightSet], hashers: dict[Path, StreamHasher]):
        from concurrent.futures import ThreadPoolExecutor

        self.sets, self.hashers = sets, hashers
        # Two buffer sets: the readers fill one while the arithmetic uses the other.
        self.bufs = [[bytearray(CHUNK_ELEMENTS * 8) for _ in sets] for _ in range(2)]
        self.pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="ensemble-read")

    def _read(self, i: int, step: _Step, buf: bytearray) -> np.ndarray:
        reader, info = self.sets[i].where[step.name]
        part = reader.read(info, step.start, step.count, buf)
        hasher = self.hashers.get(reader.path)
        if hasher is not None:
            hasher.feed(info.start + step.start * info.itemsize, memoryview(buf)[:part.nbytes])
        return part

    def submit(self, step: _Step, slot: int):
        return [self.pool.submit(self._read, i, step, self.bufs[slot][i]) for i in range(len(self.sets))]

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


def _steps(names: Iterable[str], where: dict) -> Iterable[_Step]:
    for name in names:
        numel = where[name][1].numel
        if numel == 0:
            yield _Step(name, 0, 0)
        for start, count in iter_chunks(numel, CHUNK_ELEMENTS):
            yield _Step(name, start, count)


def _combine(step: _Step, parts: list[np.ndarray], sets: Sequence[_WeightSet],
             acc: np.ndarray) -> np.ndarray:
    """The average of one chunk (float tensors) or the checked copy (integer and bool ones)."""
    info = sets[0].where[step.name][1]
    if info.dtype in FLOAT_DTYPES:
        a = acc[:step.count]
        np.copyto(a, to_float(parts[0], info.dtype, acc.dtype))
        for part in parts[1:]:
            np.add(a, to_float(part, info.dtype, acc.dtype), out=a)
        a /= len(parts)
        return from_float(a, info.dtype)
    for part, ws in zip(parts[1:], sets[1:]):
        if not np.array_equal(parts[0], part):
            raise EnsembleError(
                f"{ws.folder}: {info.dtype} tensor {step.name!r} differs from {sets[0].folder}; "
                "integer buffers must be equal to be averaged, leave this checkpoint out"
            )
    return parts[0]


def _write_average(sets: Sequence[_WeightSet], folder: Path, metadata: dict[str, str],
                   accumulate: str, hashers: dict[Path, StreamHasher], progress: bool) -> list[SafetensorsWriter]:
    ref = sets[0]
    acc = np.empty(CHUNK_ELEMENTS, dtype=np.dtype(accumulate))
    total = sum(info.nbytes for _, info in ref.where.values())
    plan = [(out_name, step) for out_name, names in ref.layout for step in _steps(names, ref.where)]
    writers: list[SafetensorsWriter] = []
    streamer = _Streamer(sets, hashers)
    try:
        with _progress(total, progress) as bar:
            pending = streamer.submit(plan[0][1], 0) if plan else []
            for i, (out_name, step) in enumerate(plan):
                parts = [f.result() for f in pending]
                if i + 1 < len(plan):  # read ahead into the other buffer set
                    pending = streamer.submit(plan[i + 1][1], (i + 1) % 2)
                if not writers or writers[-1].path.name != out_name:
                    if writers:
                        writers[-1].close()
                    names = dict(ref.layout)[out_name]
                    entries = [(n, ref.where[n][1].dtype, ref.where[n][1].shape) for n in names]
                    writers.append(SafetensorsWriter(folder / out_name, entries, metadata))
                writers[-1].write(step.name, _combine(step, parts, sets, acc) if step.count else b"")
                bar.update(step.count * ref.where[step.name][1].itemsize)
            if writers:
                writers[-1].close()
    finally:
        streamer.close()
        for w in writers:
            w.abort()
    if len(ref.layout) > 1:
        weight_map = {n: out_name for out_name, names in ref.layout for n in names}
        index = {"metadata": {"total_size": total}, "weight_map": weight_map}
        (folder / "model.safetensors.index.json").write_text(json.dumps(index, indent=2, sort_keys=True))
    return writers


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
            from .errors import option

            raise EnsembleError(f"{folder / config}: auto_map names code shipped with the model ({', '.join(modules)}); "
                                f"the average needs it to load: {option('trust_remote_code')} to copy it (and let "
                                "transformers run it), once you trust it")
        missing = [m for m in modules if "--" not in m and not (folder / f"{m}.py").is_file()]
        if missing:
            raise EnsembleError(f"{folder / f'{missing[0]}.py'}: named by auto_map in {config} but missing; copy the "
                                "model's code files into the checkpoint")
        files.update({p.name: p for p in code})
    return files


def _copy_files(files: dict[str, Path], dst: Path) -> None:
    for name, src in files.items():
        (dst / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dst / name)


def _settings(method: str, k, selection: Selection, accumulate_dtype: str, holdout, exclude_trials) -> dict:
    """The options an average was built with, as its manifest records them: what must be equal
    for an existing folder to be the same average."""
    searched = method == "greedy" or k == "auto" or isinstance(k, tuple)
    return {"method": method, "k": (list(k) if isinstance(k, tuple) else k) if searched else len(selection.chosen),
            "accumulate_dtype": accumulate_dtype, "holdout": holdout.digest if holdout is not None else None,
            "exclude_trials": sorted(exclude_trials or ())}


def _key(c: Checkpoint, selection: Selection) -> list:
    trial = selection.trial_of(c)
    return [trial.name if trial is not None else None, c.step]


def _stale_reason(out: str | os.PathLike, selection: Selection, settings: dict, tokenizer_dir: Path,
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
    tok_dir = _find_tokenizer(selection, _check_configs([c.path for c in selection.chosen]), tokenizer)
    settings = _settings("uniform", parse_k(k), selection, accumulate_dtype, None, exclude_trials)
    copied = loading_files(selection.chosen[0].path, tok_dir, trust_remote_code)
    return _stale_reason(out, selection, settings, tok_dir, file_digest, copied=copied)


def remove_leftovers(folder: str | os.PathLike, name: str | None = None, *, dry_run: bool = False,
                     held: bool = False) -> list[Path]:
    """Remove what killed averages left in ``folder``: ``.NAME.tmp-*`` folders being built and
    ``.NAME.old-*`` folders being replaced (only ``name``'s, when given). One whose output's lock
    another process holds is being written and is kept; ``held``: the caller holds ``name``'s lock
    (a second lock of the same file would wait on the caller's own). Returns what was (or would
    be) removed."""
    import re

    folder = Path(folder)
    if not folder.is_dir():
        return []
    from filelock import Timeout

    from .atomic import output_lock

    removed = []
    for path in sorted(folder.iterdir()):
        m = re.fullmatch(r"\.(.+)\.(?:tmp|old)-[0-9a-f]{8}", path.name)
        if not m or not path.is_dir() or (name is not None and m.group(1) != name):
            continue
        try:
            with contextlib.nullcontext() if held else output_lock(folder / m.group(1)).acquire(timeout=0):
                if not dry_run:
                    shutil.rmtree(path, ignore_errors=True)
                removed.append(path)
        except Timeout:
            continue  # its writer is alive
    return removed


def _clean(out: Path, held: bool = False) -> None:
    """Remove what killed averages of ``out`` left beside it (see :func:`remove_leftovers`)."""
    for path in remove_leftovers(out.parent, out.name, held=held):
        log.info("removed %s, left by an average that was killed", path)


def _up_to_date(out: Path, selection: Selection, settings: dict, tok_dir: Path, force: bool,
                searched: bool = False, copied: dict[str, Path] | None = None) -> bool:
    """True when ``out`` already holds this average (said in the log); an error when it holds
    something else and ``force`` is off; False when it is to be (re)written."""
    if force or not out.exists():
        return False
    why = _stale_reason(out, selection, settings, tok_dir, searched=searched, copied=copied)
    if why is None:
        log.info("%s: up to date (the same checkpoints, unchanged, with the same settings)", out)
        return True
    _refuse_existing(out, force, why)
    return False


def _refuse_existing(out: Path, force: bool, why: str | None = None) -> None:
    from .errors import option

    if out.exists() and not force:
        raise EnsembleError(f"{out}: already exists{f' ({why})' if why else ''}; {option('force')} to replace it "
                            f"or {option('out', '...')} for another folder")


def parse_k(k) -> int | str | tuple[int, ...] | None:
    """``k`` as given: None, an int, "auto", or several values ("2,3,4" or a sequence of ints)."""
    if isinstance(k, np.integer):
        k = int(k)
    if isinstance(k, bool) or not (k is None or isinstance(k, (int, str)) or (
            isinstance(k, (list, tuple)) and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool)
                                                 for v in k))):
        raise EnsembleError(f"k must be a number, 'auto' or a list like 2,3,4; got {k!r}")
    if k is None or (isinstance(k, int) and not isinstance(k, bool)):
        if k is not None and k < 1:
            raise EnsembleError(f"k must be at least 1, got {k}")
        return k
    if isinstance(k, str):
        k = k.strip()
        if k == "auto":
            return k
        try:
            values = tuple(int(v) for v in k.split(","))
        except ValueError:
            raise EnsembleError(f"--k must be a number, 'auto' or a list like 2,3,4; got {k!r}") from None
    else:
        values = tuple(int(v) for v in k)
    if not values or min(values) < 1:
        raise EnsembleError(f"k values must be at least 1, got {k!r}")
    return values[0] if len(values) == 1 else tuple(sorted(set(values)))


class _HoldoutScorer:
    """Accuracy on a labelled split of the average of a set of checkpoints, computed in memory:
    a running float32 sum of the state dicts, loaded into one model for each evaluation."""

    def __init__(self, best: Checkpoint, tok_dir: Path, holdout, batch_size: int, device: str,
                 trust_remote_code: bool = False):
        from .inference import InferenceSettings, ModelRef, ModelSession

        self.session = ModelSession(ModelRef.open(best.path, tokenizer=tok_dir),
                                    InferenceSettings(batch_size=batch_size, device=device,
                                                      trust_remote_code=trust_remote_code), cache=None)
        self.holdout = holdout
        self.y = holdout.label_indices(self.session.ref.labels, model=str(best.path))
        self.enc = self.session.encode(holdout)

    @staticmethod
    def load(checkpoint: Checkpoint) -> dict[str, np.ndarray]:
        ws = _open_weights(checkpoint.path)
        try:
            out = {}
            for name, (reader, info) in ws.where.items():
                if info.dtype in FLOAT_DTYPES:
                    buf = bytearray(info.nbytes)
                    part = reader.read(info, 0, info.numel, buf) if info.numel else np.zeros(0, DTYPES[info.dtype][0])
                    out[name] = to_float(part, info.dtype, np.dtype("float32")).reshape(info.shape).copy()
            return out
        finally:
            ws.close()

    def score(self, total: dict[str, np.ndarray], count: int) -> float:
        import torch

        model = self.session.model
        state = {k: torch.from_numpy(v / count) for k, v in total.items()}
        result = model.load_state_dict(state, strict=False)
        if result.unexpected_keys:
            raise EnsembleError(f"{self.session.ref.folder}: tensor {result.unexpected_keys[0]!r} is not in the model; "
                                "only checkpoints of one model can be averaged")
        values = self.session.compute(self.holdout, self.enc)
        return float((values.argmax(axis=1) == self.y).mean())


def _search(ranking: Ranking, method: str, k, holdout, tok_dir: Path, batch_size: int, device: str,
            progress: bool, trial_of=lambda c: None, trust_remote_code: bool = False) -> tuple[tuple[Checkpoint, ...], dict]:
    """Greedy soup, or the K whose top-K average scores best on ``holdout``.

    Greedy soup (Wortsman et al., 2022, recipe 1): checkpoints in metric order, each added to the
    running average when the held-out accuracy does not drop. A tie adds it: an average of more
    checkpoints that scores the same is at least as flat a solution, and the paper's rule is the
    same (>=). K search: the top-K average for each K; the best score wins, the larger K on ties.
    """
    from tqdm.auto import tqdm

    candidates = list(ranking.ranked)
    if method == "greedy" and isinstance(k, int):
        candidates = candidates[:k]
    ks = None
    if method == "uniform":
        ks = tuple(range(1, len(candidates) + 1)) if k == "auto" else k
        if max(ks) > len(candidates):
            raise EnsembleError(f"{candidates[0].path.parent}: k={max(ks)} but only {len(candidates)} "
                                "checkpoints have the metric; pass smaller values of --k")
        candidates = candidates[:max(ks)]
    scorer = _HoldoutScorer(candidates[0], tok_dir, holdout, batch_size, device, trust_remote_code)
    metric = ranking.metric
    trials, chosen = [], []
    total, count, best = None, 0, -1.0
    with tqdm(total=len(candidates), desc=f"{method} search", unit="ckpt", disable=not progress, leave=False) as bar:
        for ck in candidates:
            weights = scorer.load(ck)
            trial = weights if total is None else {n: total[n] + weights[n] for n in total}
            del weights
            if method == "greedy":
                acc = scorer.score(trial, count + 1)
                accepted = acc >= best
                if accepted:
                    total, count, best = trial, count + 1, acc
                    chosen.append(ck)
                trial = trial_of(ck)
                trials.append({**({"trial": trial.name} if trial is not None else {}), "step": ck.step,
                               "metric_value": ck.metrics.get(metric), "holdout_accuracy": acc, "accepted": accepted})
            else:
                total, count = trial, count + 1
                if count in ks:
                    acc = scorer.score(total, count)
                    trials.append({"k": count, "holdout_accuracy": acc})
                    if acc >= best:
                        best, chosen = acc, candidates[:count]
            bar.update(1)
    holdout_info = {"path": str(holdout.path.resolve()), "data_digest": holdout.digest, "rows": len(holdout),
                    "metric": "accuracy", "score": best}
    for t in trials:
        log.info("  %s", ", ".join(f"{a}={b:.4f}" if isinstance(b, float) else f"{a}={b}" for a, b in t.items()))
    log.info("%s: %d checkpoints chosen on %s (accuracy %.4f)", "greedy soup" if method == "greedy" else "k search",
             len(chosen), holdout.path, best)
    return tuple(chosen), {"method": method, "holdout": holdout_info, "trials": trials}


def _log_selection(selection: Selection) -> None:
    """The ranked table (or the sweep's trials) and what was chosen, in the log."""
    if selection.sweep is not None:
        log.info("%s", selection.sweep.format_table())
        for c in selection.chosen:
            log.info("chosen: trial %s, %s (%s %.6g)", selection.trial_of(c).name, c.name, selection.ranking.metric,
                     c.metrics[selection.ranking.metric])
    elif selection.ranking is not None:
        log.info("%s", selection.ranking.format_table(selection.chosen))


def _build(out: Path, selection: Selection, settings: dict, tok_dir: Path, accumulate_dtype: str, search,
           *, force: bool, searched: bool, progress: bool, copied: dict[str, Path]) -> Path:
    """Write the average of ``selection`` to ``out`` under its lock: built in a temporary folder
    beside it (weights streamed, manifest in the header and beside it, ``copied`` copied: see
    :func:`loading_files`), then renamed into place; what a killed build left is removed first."""
    folders = [c.path for c in selection.chosen]
    out.parent.mkdir(parents=True, exist_ok=True)

    from .atomic import output_lock

    lock = output_lock(out)
    sets: list[_WeightSet] = []
    tmp = out.parent / f".{out.name}.tmp-{uuid.uuid4().hex[:8]}"
    try:
        with lock:
            _clean(out, held=True)  # under the lock: no live writer of out
            if _up_to_date(out, selection, settings, tok_dir, force, searched=searched, copied=copied):  # done meanwhile
                return out
            for folder in folders:
                sets.append(_open_weights(folder))
            _check_compatible(sets)
            # Safetensors reads are the file's own bytes, so they feed its hash as they stream;
            # a .bin file's tensors come through torch.load and the file is hashed on its own.
            hashers = {f.path: StreamHasher(f.path, f.size, f.header_bytes)
                       for ws in sets for f in ws.files if isinstance(f, SafetensorsFile)}
            tmp.mkdir()
            placeholder = _st_metadata(_manifest(selection, sets, None, accumulate_dtype, tok_dir, out, search,
                                                 settings))
            writers = _write_average(sets, tmp, placeholder, accumulate_dtype, hashers, progress)
            digests = {f.path: hashers[f.path].hexdigest() if f.path in hashers else file_digest(f.path)
                       for ws in sets for f in ws.files}
            manifest = _manifest(selection, sets, digests, accumulate_dtype, tok_dir, out, search, settings)
            for w in writers:  # same length as the placeholder hashes, so it fits in place
                w.rewrite_metadata(_st_metadata(manifest))
            _copy_files(copied, tmp)
            # digests of the files written, checked by ensemble predict before it trusts them
            manifest["outputs"] = {w.path.name: file_digest(w.path) for w in writers}
            # the JSON file alone says when: the weights' header must not depend on the time
            manifest["created_utc"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            (tmp / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2) + "\n")
            if out.exists():
                old = out.parent / f".{out.name}.old-{uuid.uuid4().hex[:8]}"
                out.rename(old)
                tmp.rename(out)
                shutil.rmtree(old, ignore_errors=True)
            else:
                tmp.rename(out)
    finally:
        for ws in sets:
            ws.close()
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    log.info("wrote %s (average of %d checkpoints)", out, len(folders))
    return out


def average_checkpoints(
    run_or_paths: str | os.PathLike | Sequence[str | os.PathLike],
    k: int | str | Sequence[int] | None = None,
    metric: str | None = None,
    out: str | os.PathLike | None = None,
    *,
    method: str = "uniform",
    holdout=None,
    greater_is_better: bool | None = None,
    tokenizer: str | os.PathLike | None = None,
    accumulate_dtype: str = "float32",
    force: bool = False,
    batch_size: int = 32,
    device: str = "auto",
    progress: bool = True,
    across_trials: bool = False,
    exclude_trials: Sequence[str] = (),
    trust_remote_code: bool = False,
) -> Path:
    """Average the top-``k`` checkpoints of a run into a model folder ``from_pretrained`` loads.

    Parameters
    ----------
    run_or_paths : path or sequence of paths
        A ``Trainer`` output folder, or ``checkpoint-N`` folders.
    k : int, "auto" or sequence of int, optional
        Number of best checkpoints to average. Default 4 for a run folder; all the folders when
        checkpoint folders are listed. "auto" or several values (``"2,3,4"``, ``[2, 3, 4]``):
        the K whose top-K average scores best on ``holdout`` (ties: the larger K). With
        ``method="greedy"``: how many of the best checkpoints are candidates (default all).
    metric : str, optional
        The eval metric to rank by (``eval_`` prefix optional). Default ``eval_accuracy`` when
        logged, else the run's ``metric_for_best_model``, else ``eval_loss``.
    out : path-like, optional
        Output folder. Default ``weights/<run-name>-top<K>`` under the current directory.
    method : {"uniform", "greedy"}, default "uniform"
        "greedy": greedy soup, each checkpoint in metric order joins the average when the
        accuracy on ``holdout`` does not drop (ties join).
    holdout : Split or path-like, optional
        A labelled split to score soups and K on (needed by "greedy" and a searched K). Its
        score of the result is then optimistic: the manifest records ``selected_on_holdout``.
    greater_is_better : bool, optional
        Metric direction. Default: the run's own when the metric is its ``metric_for_best_model``,
        else the name's (loss, mse, rmse, mae ... lower; accuracy, f1, pearson ... higher); a
        name that says neither is an error asking for it.
    tokenizer : path-like, optional
        Folder to copy the tokenizer from. Default: the best checkpoint, the other chosen ones,
        the run folder, then the config's ``_name_or_path`` when it is a local folder.
    accumulate_dtype : {"float32", "float64"}, default "float32"
        Precision of the running sum; results are written in the checkpoints' dtype.
    force : bool, default False
        Replace ``out`` if it exists.
    batch_size, device
        Inference settings for scoring on ``holdout`` (see :class:`~ensemble.inference.InferenceSettings`).
    progress : bool, default True
        Show a progress bar (on stderr).
    across_trials : bool, default False
        ``run_or_paths`` is a sweep folder (``Trainer.hyperparameter_search``'s output, or any
        folder of run folders): rank the checkpoints of all its trials together. The manifest
        records every trial's parameters and which trial each checkpoint came from.
    exclude_trials : sequence of str
        Trial folders to leave out of an ``across_trials`` ranking.
    trust_remote_code : bool, default False
        Copy the code files that ``auto_map`` names (a model with its own modeling code); without
        it such checkpoints are refused, since their average could not be loaded.

    Returns
    -------
    Path
        The output folder: ``config.json``, the averaged ``model.safetensors`` (sharded with an
        index when the checkpoints were), ``generation_config.json``, the tokenizer, processor and
        chat-template files, the model's code files (``auto_map``) and ``ensemble_manifest.json``.
    """
    if accumulate_dtype not in ("float32", "float64"):
        raise EnsembleError(f"accumulate_dtype must be 'float32' or 'float64', got {accumulate_dtype!r}")
    if method not in ("uniform", "greedy"):
        raise EnsembleError(f"method must be 'uniform' or 'greedy', got {method!r}")
    k = parse_k(k)
    searched = method == "greedy" or k == "auto" or isinstance(k, tuple)
    if searched and holdout is None:
        what = "--method greedy" if method == "greedy" else f"--k {k if k == 'auto' else ','.join(map(str, k))}"
        raise EnsembleError(f"{what} needs --holdout: a labelled data file to score the averages on")
    if not searched and holdout is not None:
        raise EnsembleError("--holdout is used only by --method greedy and --k auto (or --k 2,3,4); drop it")
    search = None
    tag = "greedy" if method == "greedy" else "top"
    if searched:
        from .data import Split, load_split

        holdout = holdout if isinstance(holdout, Split) else load_split(holdout, require_label=True)
        every = select_checkpoints(run_or_paths, "all", metric, greater_is_better, across_trials=across_trials,
                                   exclude_trials=exclude_trials)
        config = _check_configs([c.path for c in every.chosen])
        tok_dir = _find_tokenizer(every, config, tokenizer)
        settings = _settings(method, k, every, accumulate_dtype, holdout, exclude_trials)
        copied = loading_files(every.chosen[0].path, tok_dir, trust_remote_code)
        if out is not None and _up_to_date(Path(out), every, settings, tok_dir, force, searched=True, copied=copied):
            _clean(Path(out))
            return Path(out)
        chosen, search = _search(every.ranking, method, k, holdout, tok_dir, batch_size, device, progress,
                                 every.trial_of, trust_remote_code)
        selection = Selection(chosen, every.ranking, every.run_dir, every.sweep)
    else:
        selection = select_checkpoints(run_or_paths, k, metric, greater_is_better, across_trials=across_trials,
                                       exclude_trials=exclude_trials)
        settings = _settings(method, k, selection, accumulate_dtype, None, exclude_trials)
    _log_selection(selection)
    out = Path(out) if out is not None else Path("weights") / f"{selection.name}-{tag}{len(selection.chosen)}"
    folders = [c.path for c in selection.chosen]
    config = _check_configs(folders)
    tok_dir = _find_tokenizer(selection, config, tokenizer)
    copied = loading_files(folders[0], tok_dir, trust_remote_code)
    if not searched and _up_to_date(out, selection, settings, tok_dir, force, copied=copied):
        _clean(out)
        return out
    return _build(out, selection, settings, tok_dir, accumulate_dtype, search, force=force, searched=searched,
                  progress=progress, copied=copied)
