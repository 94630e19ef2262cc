"""The inference settings (batch size, length, device, dtype, attention) and how they are recorded
in, and compared with, cache entries."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from importlib import metadata as importlib_metadata
from typing import TYPE_CHECKING, Mapping

from ensemble.core.errors import EnsembleError, option
from ensemble.core.options import ALLOWED

if TYPE_CHECKING:  # a ModelRef is passed in; importing it here would be a circle
    from ensemble.inference.models import ModelRef

log = logging.getLogger(__name__)

__all__ = ['InferenceSettings', 'resolve_device', 'resolve_dtype', 'settings_difference', 'recorded_settings']


@dataclass(frozen=True)
class InferenceSettings:
    """What changes the numbers, apart from the model and the data.

    Parameters
    ----------
    batch_size : int, default 32
    max_length : int, optional
        Truncate to this many tokens (the token forward: each window's length; a longer text runs
        as overlapping windows, never truncated). Default: the model's limit
        (``max_position_embeddings``, or the tokenizer's ``model_max_length`` when smaller).
    pad_to_multiple_of : int, optional
        Pad each batch to a multiple of this (8 suits tensor cores).
    device : {"auto", "cpu", "cuda", "cuda:N", "mps"}, default "auto"
        "auto": CUDA, then MPS, then CPU.
    dtype : {"auto", "float32", "bfloat16", "float16"}, default "auto"
        "auto": bfloat16 on GPUs that support it, float16 on other GPUs, float32 on CPU.
    trust_remote_code : bool, default False
        Let transformers run Python code that the model folder ships (``auto_map``). Off: a
        model that needs it fails to load with transformers' message.
    """

    batch_size: int = 32
    max_length: int | None = None
    pad_to_multiple_of: int | None = None
    device: str = "auto"
    dtype: str = "auto"
    trust_remote_code: bool = False

    def __post_init__(self):
        for name in ("batch_size", "max_length", "pad_to_multiple_of"):
            v = getattr(self, name)
            if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < 1):
                raise EnsembleError(f"{name} must be a positive integer, got {v!r}")
        if self.dtype not in ALLOWED["dtype"]:
            raise EnsembleError(f"dtype must be {', '.join(ALLOWED['dtype'])}; got {self.dtype!r}")
        if self.device.split(":")[0] not in ("auto", "cpu", "cuda", "mps"):
            raise EnsembleError(f"device must be auto, cpu, cuda, cuda:N or mps, got {self.device!r}")

    @classmethod
    def of(cls, value=None) -> InferenceSettings:
        """``value`` as settings: None (the defaults), a mapping of fields (unset ones default), or settings."""
        if value is None:
            return cls()
        if isinstance(value, cls):
            return value
        if isinstance(value, Mapping):
            known = set(cls.__dataclass_fields__)
            unknown = sorted(set(value) - known)
            if unknown:
                raise EnsembleError(f"unknown inference setting {unknown[0]!r}; expected {', '.join(sorted(known))}")
            return cls(**{k: v for k, v in value.items() if v is not None})
        raise EnsembleError(f"inference settings must be a mapping or InferenceSettings, got {type(value).__name__}")

    def requested(self) -> dict:
        """The settings as asked for (before "auto" is resolved), for provenance."""
        return {k: getattr(self, k) for k in ("batch_size", "max_length", "pad_to_multiple_of", "device", "dtype")}


# What "auto" resolves to on each device type (resolve_dtype), and the fixed parts of every key.
AUTO_DTYPES = {"cpu": ("float32",), "mps": ("float16",), "cuda": ("bfloat16", "float16")}
ATTENTION_POLICY = "sdpa-else-eager"
_FIXED_SETTINGS = {"attention": ATTENTION_POLICY, "order": "length-desc", "padding": "right"}


def recorded_settings(ref: ModelRef, settings: InferenceSettings, device_type: str = "cpu",
                      dtype: str | None = None) -> dict:
    """The settings a cache entry of ``ref`` computed with ``settings`` on ``device_type`` records
    (and its key hashes): the token limit, the dtype ("auto" resolved), batching and padding."""
    return {"max_tokens": ref.token_limit(settings.max_length)[0],
            "dtype": dtype or (settings.dtype if settings.dtype != "auto" else AUTO_DTYPES[device_type][0]),
            "device_type": device_type, "batch_size": settings.batch_size,
            "pad_to_multiple_of": settings.pad_to_multiple_of, **_FIXED_SETTINGS}


def settings_difference(recorded: Mapping, ref: ModelRef, settings: InferenceSettings) -> str | None:
    """None when a cache entry's recorded settings (its ``settings`` header) are the ones
    ``settings`` ask for on model ``ref``; else the first difference, in words (``max_tokens 14,
    not 126``). Judged without torch: ``device="auto"`` accepts any device type, ``dtype="auto"``
    the dtype auto resolves to on the entry's device type."""
    want = recorded_settings(ref, settings)  # device and dtype are judged below, "auto" accepting several
    for k, v in want.items():
        if k not in ("device_type", "dtype") and recorded.get(k) != v:
            return f"{k} {recorded.get(k)}, not {v}"
    device, dtype = recorded.get("device_type"), recorded.get("dtype")
    if settings.device != "auto" and device != settings.device.split(":")[0]:
        return f"device {device}, not {settings.device}"
    if settings.dtype == "auto" and dtype not in AUTO_DTYPES.get(device, ()):
        return f"dtype {dtype}, not auto ({'/'.join(AUTO_DTYPES.get(device, ('?',)))} on {device})"
    if settings.dtype != "auto" and dtype != settings.dtype:
        return f"dtype {dtype}, not {settings.dtype}"
    return None


def resolve_device(device: str = "auto"):
    """The torch device for ``device``: "auto" is CUDA, then MPS, then CPU."""
    import torch

    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise EnsembleError(f"device {device!r} asked for but torch sees no CUDA GPU; {option('device', 'cpu')}")
    if dev.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise EnsembleError(f"device {device!r} asked for but MPS is not available; {option('device', 'cpu')}")
    return dev


def resolve_dtype(dtype: str, device) -> str:
    """"auto": bfloat16 on GPUs that support it, float16 on other GPUs, float32 on CPU."""
    if dtype != "auto":
        return dtype
    if device.type == "cuda":
        import torch

        return "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
    if device.type == "mps":
        return "float16"
    return "float32"


def library_versions() -> dict[str, str]:
    out = {}
    for dist in ("torch", "transformers", "tokenizers"):
        try:
            out[dist] = importlib_metadata.version(dist)
        except importlib_metadata.PackageNotFoundError:
            out[dist] = "none"
    return out
