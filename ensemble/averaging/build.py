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
import shutil
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from ensemble.core.errors import EnsembleError, flag
from ensemble.core.options import check_option
from ensemble.io.hashing import StreamHasher, file_digest
from ensemble.io.tensors import FLOAT_DTYPES, SafetensorsFile, SafetensorsWriter, from_float, iter_chunks, to_float

log = logging.getLogger(__name__)
from ensemble.averaging.manifest import (
    MANIFEST_NAME,
    average_settings,
    copy_loading_files,
    loading_files,
    manifest_of,
    safetensors_metadata,
    stale_reason,
)
from ensemble.averaging.reading import (
    CHUNK_ELEMENTS,
    WeightSet,
    check_compatible,
    check_configs,
    open_weights,
)
from ensemble.averaging.selection import Selection, find_tokenizer, parse_k, select_checkpoints
from ensemble.averaging.soup import log_soup, search_k

__all__ = ['average_checkpoints', 'remove_leftovers']


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

    def __init__(self, sets: Sequence[WeightSet], hashers: dict[Path, StreamHasher]):
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


def _combine(step: _Step, parts: list[np.ndarray], sets: Sequence[WeightSet],
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


def _write_average(sets: Sequence[WeightSet], folder: Path, metadata: dict[str, str],
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

    from ensemble.io.atomic import output_lock

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
    why = stale_reason(out, selection, settings, tok_dir, searched=searched, copied=copied)
    if why is None:
        log.info("%s: up to date (the same checkpoints, unchanged, with the same settings)", out)
        return True
    _refuse_existing(out, force, why)
    return False


def _refuse_existing(out: Path, force: bool, why: str | None = None) -> None:
    from ensemble.core.errors import option

    if out.exists() and not force:
        raise EnsembleError(f"{out}: already exists{f' ({why})' if why else ''}; {option('force')} to replace it "
                            f"or {option('out', '...')} for another folder")


def _build(out: Path, selection: Selection, settings: dict, tok_dir: Path, accumulate_dtype: str, search,
           *, force: bool, searched: bool, progress: bool, copied: dict[str, Path]) -> Path:
    """Write the average of ``selection`` to ``out`` under its lock: built in a temporary folder
    beside it (weights streamed, manifest in the header and beside it, ``copied`` copied: see
    :func:`loading_files`), then renamed into place; what a killed build left is removed first."""
    folders = [c.path for c in selection.chosen]
    out.parent.mkdir(parents=True, exist_ok=True)

    from ensemble.io.atomic import output_lock

    lock = output_lock(out)
    sets: list[WeightSet] = []
    tmp = out.parent / f".{out.name}.tmp-{uuid.uuid4().hex[:8]}"
    try:
        with lock:
            _clean(out, held=True)  # under the lock: no live writer of out
            if _up_to_date(out, selection, settings, tok_dir, force, searched=searched, copied=copied):  # done meanwhile
                return out
            for folder in folders:
                sets.append(open_weights(folder))
            check_compatible(sets)
            # Safetensors reads are the file's own bytes, so they feed its hash as they stream;
            # a .bin file's tensors come through torch.load and the file is hashed on its own.
            hashers = {f.path: StreamHasher(f.path, f.size, f.header_bytes)
                       for ws in sets for f in ws.files if isinstance(f, SafetensorsFile)}
            tmp.mkdir()
            placeholder = safetensors_metadata(manifest_of(selection, sets, None, accumulate_dtype, tok_dir, out, search,
                                                 settings))
            writers = _write_average(sets, tmp, placeholder, accumulate_dtype, hashers, progress)
            digests = {f.path: hashers[f.path].hexdigest() if f.path in hashers else file_digest(f.path)
                       for ws in sets for f in ws.files}
            manifest = manifest_of(selection, sets, digests, accumulate_dtype, tok_dir, out, search, settings)
            for w in writers:  # same length as the placeholder hashes, so it fits in place
                w.rewrite_metadata(safetensors_metadata(manifest))
            copy_loading_files(copied, tmp)
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
        Inference settings for scoring on ``holdout`` (see :class:`~ensemble.inference.settings.InferenceSettings`).
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
    check_option("accumulate_dtype", accumulate_dtype)
    check_option("soup", method, called="method")
    k = parse_k(k)
    searched = method == "greedy" or k == "auto" or isinstance(k, tuple)
    if searched and holdout is None:
        what = flag("method", "greedy") if method == "greedy" else flag("k", k if k == "auto" else ",".join(map(str, k)))
        raise EnsembleError(f"{what} needs {flag('holdout')}: a labelled data file to score the averages on")
    if not searched and holdout is not None:
        raise EnsembleError(f"{flag('holdout')} is used only by {flag('method', 'greedy')} and {flag('k', 'auto')} (or a "
                            "list of K); drop it")
    search = None
    tag = "greedy" if method == "greedy" else "top"
    if searched:
        from ensemble.data.splits import Split, load_split

        holdout = holdout if isinstance(holdout, Split) else load_split(holdout, require_label=True)
        every = select_checkpoints(run_or_paths, "all", metric, greater_is_better, across_trials=across_trials,
                                   exclude_trials=exclude_trials)
        config = check_configs([c.path for c in every.chosen])
        tok_dir = find_tokenizer(every, config, tokenizer)
        settings = average_settings(method, k, every, accumulate_dtype, holdout, exclude_trials)
        copied = loading_files(every.chosen[0].path, tok_dir, trust_remote_code)
        if out is not None and _up_to_date(Path(out), every, settings, tok_dir, force, searched=True, copied=copied):
            _clean(Path(out))
            return Path(out)
        chosen, search = search_k(every.ranking, method, k, holdout, tok_dir, batch_size, device, progress,
                                 every.trial_of, trust_remote_code)
        selection = Selection(chosen, every.ranking, every.run_dir, every.sweep)
    else:
        selection = select_checkpoints(run_or_paths, k, metric, greater_is_better, across_trials=across_trials,
                                       exclude_trials=exclude_trials)
        settings = average_settings(method, k, selection, accumulate_dtype, None, exclude_trials)
    log_soup(selection)
    out = Path(out) if out is not None else Path("weights") / f"{selection.name}-{tag}{len(selection.chosen)}"
    folders = [c.path for c in selection.chosen]
    config = check_configs(folders)
    tok_dir = find_tokenizer(selection, config, tokenizer)
    copied = loading_files(folders[0], tok_dir, trust_remote_code)
    if not searched and _up_to_date(out, selection, settings, tok_dir, force, copied=copied):
        _clean(out)
        return out
    return _build(out, selection, settings, tok_dir, accumulate_dtype, search, force=force, searched=searched,
                  progress=progress, copied=copied)
