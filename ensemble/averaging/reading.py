"""Reading the checkpoints to average: safetensors (sharded or not) and ``.bin`` files read with
``weights_only``, their configs checked against each other."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from ensemble.core.errors import EnsembleError, cli_face
from ensemble.io.modelfiles import load_torch_bin, read_config
from ensemble.io.tensors import DTYPES, SafetensorsFile, TensorInfo

log = logging.getLogger(__name__)

# Elements per chunk: 256K elements is 1 MiB of float32 accumulator, small enough to stay in
# the CPU cache while K chunks are summed into it (measured faster here than 1M or 4M).
CHUNK_ELEMENTS = 1 << 18
# Config fields that must agree for weights to be averaged meaningfully.
_CONFIG_KEYS = ("model_type", "architectures", "id2label")


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
class WeightSet:
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


def open_weights(folder: Path) -> WeightSet:
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
        return WeightSet(folder, files, where, layout)
    raise EnsembleError(
        f"{folder}: no model.safetensors, sharded index or pytorch_model.bin; is the checkpoint complete?"
    )


def check_configs(folders: Sequence[Path]) -> dict:
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


def check_compatible(sets: Sequence[WeightSet], prefix: str = "",
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




# --------------------------------------------------------------------------- tokenizer






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
    ref_set = open_weights(ref_path)
    hint = ("leave it out with --exclude-trial {}" if cli_face() else "leave it out with exclude_trials=[{}]") + (
        f" (sweep {sweep.root})")
    try:
        for trial, path in picks[1:]:
            cfg = read_config(path)
            for key in _CONFIG_KEYS:
                if cfg.get(key) != ref_cfg.get(key):
                    raise EnsembleError(f"{path / 'config.json'}: trial {trial.name}'s {key} is {cfg.get(key)!r} but "
                                        f"{ref_cfg.get(key)!r} in trial {ref_trial.name}; " + hint.format(trial.name))
            ws = open_weights(path)
            try:
                check_compatible([ref_set, ws], f"trial {trial.name} differs from trial {ref_trial.name}: ",
                                  hint.format(trial.name))
            finally:
                ws.close()
    finally:
        ref_set.close()
