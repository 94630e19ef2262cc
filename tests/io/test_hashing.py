"""Content digests: BLAKE3 of the bytes, a streamed digest equal to the whole-file one, and a
memo that never returns the digest of content that has changed."""

from __future__ import annotations

import os

from blake3 import blake3

from ensemble.io.hashing import DigestMemo, StreamHasher, file_digest


def test_file_digest_is_blake3_of_the_bytes(tmp_path):
    p = tmp_path / "f.bin"
    p.write_bytes(os.urandom(3_000_000))
    assert file_digest(p) == blake3(p.read_bytes()).hexdigest()


def test_a_streamed_digest_in_any_order_of_chunks_equals_the_files(tmp_path):
    p = tmp_path / "f.bin"
    data = os.urandom(1_000_003)
    p.write_bytes(data)
    h = StreamHasher(p, len(data))
    cuts = [0, 1000, 400_000, 999_999, len(data)]
    for a, b in reversed(list(zip(cuts, cuts[1:]))):
        h.feed(a, data[a:b])
    assert h.hexdigest() == file_digest(p)


def test_the_memo_rehashes_content_edited_in_place_with_its_mtime_set_back(tmp_path):
    memo = DigestMemo(tmp_path / "memo.sqlite")
    p = tmp_path / "w.bin"
    p.write_bytes(b"a" * 1000)
    first = memo.digest(p)
    st = p.stat()
    p.write_bytes(b"b" * 1000)  # same size
    os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert memo.digest(p) == file_digest(p) != first
    assert DigestMemo(tmp_path / "memo.sqlite").digest(p) == file_digest(p)  # what it stored is read back
