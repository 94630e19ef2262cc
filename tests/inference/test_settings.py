"""Inference settings: checked up front, and compared with what a cache entry recorded."""

from __future__ import annotations

import pytest

from ensemble.core.errors import EnsembleError
from ensemble.inference.settings import AUTO_DTYPES, InferenceSettings, resolve_dtype


@pytest.mark.parametrize("given, message", [
    ({"batch_size": 0}, r"batch_size must be a positive integer, got 0"),
    ({"max_length": True}, r"max_length must be a positive integer"),
    ({"dtype": "int8"}, r"dtype must be auto, float32, bfloat16, float16; got 'int8'"),
    ({"device": "tpu"}, r"device must be auto, cpu, cuda, cuda:N or mps"),
])
def test_bad_settings_are_refused_up_front(given, message):
    with pytest.raises(EnsembleError, match=message):
        InferenceSettings(**given)


def test_of_takes_a_mapping_or_settings():
    s = InferenceSettings.of({"max_length": 64})
    assert s.max_length == 64 and InferenceSettings.of(s) is s and InferenceSettings.of(None) == InferenceSettings()
    with pytest.raises(EnsembleError, match=r"inference settings must be a mapping or InferenceSettings, got int"):
        InferenceSettings.of(3)


def test_auto_dtype_is_float32_on_cpu():
    assert AUTO_DTYPES["cpu"] == ("float32",)
    import torch

    assert resolve_dtype("auto", torch.device("cpu")) == "float32"
    assert resolve_dtype("bfloat16", torch.device("cpu")) == "bfloat16"
