"""The streaming safetensors reader and writer, checked against the safetensors library."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from ensemble.core.errors import EnsembleError
from ensemble.io.tensors import SafetensorsFile, SafetensorsWriter, iter_chunks


def test_writer_output_is_read_back_by_safetensors(tmp_path):
    rng = np.random.default_rng(0)
    tensors = {"a": rng.standard_normal((3, 5)).astype(np.float32), "b": np.arange(7, dtype=np.int64),
               "c": rng.standard_normal(1000).astype(np.float16), "empty": np.zeros((0, 4), np.float32)}
    dtypes = {"a": "F32", "b": "I64", "c": "F16", "empty": "F32"}
    w = SafetensorsWriter(tmp_path / "x.safetensors", [(k, dtypes[k], v.shape) for k, v in tensors.items()],
                          {"format": "pt", "note": "0" * 64})
    w.write("a", tensors["a"])
    w.write("b", tensors["b"])
    for start, count in iter_chunks(1000, 300):  # a tensor may be written in pieces
        w.write("c", tensors["c"][start:start + count])
    w.close()
    w.rewrite_metadata({"format": "pt", "note": "f" * 64})
    got = load_file(tmp_path / "x.safetensors")
    for k, v in tensors.items():
        assert got[k].dtype == v.dtype and np.array_equal(got[k], v), k
    f = SafetensorsFile(tmp_path / "x.safetensors")
    assert f.metadata == {"format": "pt", "note": "f" * 64}
    info = f.tensors["c"]
    buf = bytearray(2000)
    assert np.array_equal(f.read(info, 100, 50, buf), tensors["c"][100:150])
    f.close()


def test_writer_refuses_wrong_order_and_incomplete_files(tmp_path):
    w = SafetensorsWriter(tmp_path / "x.safetensors", [("a", "F32", (2,)), ("b", "F32", (2,))], {})
    with pytest.raises(ValueError, match="out of order"):
        w.write("b", np.zeros(2, np.float32))
    w.write("a", np.zeros(2, np.float32))
    with pytest.raises(ValueError, match="'b' was not written"):
        w.close()
    with pytest.raises(FileExistsError):
        SafetensorsWriter(tmp_path / "x.safetensors", [], {})


def test_reader_matches_safetensors_on_a_real_file(tmp_path):
    rng = np.random.default_rng(1)
    ref = {f"t{i}": rng.standard_normal((i + 1, 3)).astype(np.float32) for i in range(5)}
    save_file(ref, tmp_path / "r.safetensors", {"format": "np"})
    with SafetensorsFile(tmp_path / "r.safetensors") as f:
        buf = bytearray(1024)
        for k, v in ref.items():
            assert np.array_equal(f.read(f.tensors[k], 0, v.size, buf), v.ravel())


def _write_raw(path, header: bytes, data: bytes = b"", length: int | None = None):
    path.write_bytes(struct.pack("<Q", len(header) if length is None else length) + header + data)
    return path


@pytest.mark.parametrize("case, why", [
    ("short", "shorter than the 8-byte header length"),
    ("huge_header", "exceeds the 100000000 byte limit"),
    ("past_end", "runs past the end"),
    ("bad_json", "not valid JSON"),
    ("bad_dtype", "unknown dtype"),
    ("bad_shape", "invalid shape"),
    ("offsets_out", "outside the file"),
    ("size_mismatch", "needs 16 bytes"),
    ("hole", "does not start where the previous one ends"),
    ("trailing", "data ends at byte"),
])
def test_corrupt_headers_are_refused_before_allocation(tmp_path, case, why):
    p = tmp_path / "m.safetensors"
    good = lambda: {"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}  # noqa: E731
    if case == "short":
        p.write_bytes(b"\x01\x02")
    elif case == "huge_header":
        _write_raw(p, b"{}", length=1 << 62)
    elif case == "past_end":
        _write_raw(p, b"{}", length=4096)
    elif case == "bad_json":
        _write_raw(p, b"{nope")
    else:
        h, data = good(), b"\0" * 16
        if case == "bad_dtype":
            h["a"]["dtype"] = "F33"
        elif case == "bad_shape":
            h["a"]["shape"] = [-4]
        elif case == "offsets_out":
            h["a"]["data_offsets"] = [0, 1 << 40]
        elif case == "size_mismatch":
            h["a"]["shape"] = [4]
            h["a"]["data_offsets"] = [0, 8]
            data = b"\0" * 8
        elif case == "hole":
            h["a"]["data_offsets"] = [8, 24]
            data = b"\0" * 24
        elif case == "trailing":
            data = b"\0" * 20
        _write_raw(p, json.dumps(h).encode(), data)
    with pytest.raises(EnsembleError) as e:
        SafetensorsFile(p)
    msg = str(e.value)
    assert why in msg and str(p) in msg and "truncated or corrupt" in msg and "\n" not in msg
