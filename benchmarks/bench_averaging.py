"""Streamed checkpoint averaging against a timm-style baseline and the raw I/O floor.

K=4 synthetic checkpoints of bert-base size (hidden 768, 12 layers, ~440 MB of float32 each) are
written from a ``BertConfig`` (no download). Three ways to average them run, each in a fresh
process so that its peak resident memory (``VmHWM``) is its own:

* ``streamed``: ``ensemble.average_checkpoints`` (chunked reads at header offsets, float32 sums,
  header-first writer, source sha256 hashes for the manifest);
* ``timm``: a timm ``avg_checkpoints.py``-style loop: load each whole state dict, accumulate in
  float64, divide, cast back, save;
* ``raw``: read the K files and write one file of the same size, no arithmetic: the I/O floor.

Times are measured inside each process after its imports (median of ``--repeats``), twice:
``warm``, with the files in the page cache (raw I/O is then a memory copy), and ``cold``, with
the K source files evicted from the page cache (``posix_fadvise(DONTNEED)``) before each run, as
when the checkpoints were written long ago or are larger than memory. Targets (issue 3): peak RSS of ``streamed`` at
most 1.5x one checkpoint file, its time at most 0.5x ``timm`` and at most 1.5x ``raw``.

Usage: python benchmarks/bench_averaging.py [--k 4] [--repeats 3] [--workdir DIR] [--keep]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHILD = r"""
import json, shutil, sys, time
from pathlib import Path
mode, out, *paths = sys.argv[1:]
if mode == "streamed":
    from ensemble import average_checkpoints
    t = time.perf_counter()
    average_checkpoints(paths, out=out, tokenizer=paths[0], progress=False)
    dt = time.perf_counter() - t
elif mode == "timm":
    import torch
    from safetensors.torch import load_file, save_file
    t = time.perf_counter()
    avg = None
    for p in paths:
        sd = load_file(Path(p) / "model.safetensors")
        if avg is None:
            avg = {k: v.to(torch.float64) for k, v in sd.items()}
        else:
            for k, v in sd.items():
                avg[k] += v.to(torch.float64)
        del sd
    for k in avg:
        avg[k] = avg[k].div_(len(paths)).to(torch.float32)
    Path(out).mkdir()
    save_file(avg, Path(out) / "model.safetensors", {"format": "pt"})
    dt = time.perf_counter() - t
elif mode == "raw":
    t = time.perf_counter()
    buf = bytearray(8 << 20)
    Path(out).mkdir()
    with open(Path(out) / "model.safetensors", "wb") as w:
        for i, p in enumerate(paths):
            with open(Path(p) / "model.safetensors", "rb", buffering=0) as f:
                while n := f.readinto(buf):
                    if i == 0:
                        w.write(memoryview(buf)[:n])
    dt = time.perf_counter() - t
# VmHWM: this address space's peak resident set. (ru_maxrss would carry over the parent's
# high-water mark across fork + exec.)
hwm = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:")) * 1024
print(json.dumps({"seconds": dt, "peak_rss": hwm}))
"""


def make_checkpoints(root: Path, k: int, tiny: bool = False) -> list[Path]:
    import torch
    from safetensors.torch import save_file
    from transformers import BertConfig, BertForSequenceClassification

    from ensemble.cli.example import make_tokenizer, write_vocab

    config = BertConfig(num_labels=3)  # bert-base: hidden 768, 12 layers, vocab 30522
    if tiny:  # --smoke
        config = BertConfig(num_labels=3, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                            intermediate_size=64, vocab_size=128)
    torch.manual_seed(0)
    model = BertForSequenceClassification(config)
    base = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}
    del model
    vocab = write_vocab(["가나다라마바사아자차카타파하"], root / "vocab.txt")
    folders = []
    for i in range(k):
        ck = root / f"checkpoint-{(i + 1) * 100}"
        ck.mkdir(parents=True)
        g = torch.Generator().manual_seed(i)
        sd = {n: (t + 0.01 * torch.randn(t.shape, generator=g) if t.is_floating_point() else t) for n, t in base.items()}
        save_file(sd, ck / "model.safetensors", {"format": "pt"})
        config.save_pretrained(ck)
        make_tokenizer(vocab).save_pretrained(ck)
        folders.append(ck)
    return folders


def evict(paths: list[Path]) -> None:
    for p in paths:
        fd = os.open(p / "model.safetensors", os.O_RDONLY)
        try:
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def warm(paths: list[Path]) -> None:
    for p in paths:
        with open(p / "model.safetensors", "rb") as f:
            while f.read(64 << 20):
                pass


def run_child(mode: str, out: Path, paths: list[Path], cache: str) -> dict:
    if out.exists():
        shutil.rmtree(out)
    subprocess.run(["sync"], check=False)  # no writeback of the last output during timing
    if cache == "cold":
        evict(paths)
    else:
        warm(paths)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    p = subprocess.run([sys.executable, "-c", CHILD, mode, str(out), *map(str, paths)],
                       capture_output=True, text=True, env=env)
    if p.returncode:
        raise SystemExit(f"{mode} failed:\n{p.stderr}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--k", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--keep", action="store_true", help="keep the synthetic checkpoints")
    ap.add_argument("--smoke", action="store_true", help="tiny sizes: that it runs end to end (the test suite), not "
                                                         "its figures")
    args = ap.parse_args()
    if args.smoke:
        args.k, args.repeats = 2, 1

    work = args.workdir or Path(tempfile.mkdtemp(prefix="bench_avg_"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        t = time.perf_counter()
        paths = sorted(work.glob("checkpoint-*")) or make_checkpoints(work, args.k, tiny=args.smoke)
        paths = paths[: args.k]
        size = (paths[0] / "model.safetensors").stat().st_size
        print(f"{len(paths)} checkpoints of {size / 1e6:.0f} MB each ready in {time.perf_counter() - t:.0f} s")
        results = {}
        for cache in ("warm", "cold"):
            for mode in ("raw", "streamed", "timm"):
                runs = [run_child(mode, work / f"out-{mode}", paths, cache) for _ in range(args.repeats)]
                results[cache, mode] = r = {"seconds": statistics.median(r["seconds"] for r in runs),
                                            "peak_rss": max(r["peak_rss"] for r in runs)}
                print(f"{cache} {mode:9s} {r['seconds']:7.2f} s   peak RSS {r['peak_rss'] / 1e6:7.0f} MB")

        # The streamed output must equal the float64 baseline's (a benchmark of wrong code is worthless).
        import numpy as np
        from safetensors.numpy import load_file

        a, b = load_file(work / "out-streamed" / "model.safetensors"), load_file(work / "out-timm" / "model.safetensors")
        worst = max(float(np.abs(a[k].astype(np.float64) - b[k]).max()) for k in b)
        print(f"max |streamed - float64 baseline| = {worst:.2e}")
        rss = max(results[c, "streamed"]["peak_rss"] for c in ("warm", "cold"))
        print(f"peak RSS streamed / one checkpoint file = {rss / size:.2f}  (target <= 1.5)")
        print(f"peak RSS timm     / one checkpoint file = {results['warm', 'timm']['peak_rss'] / size:.2f}")
        for cache in ("warm", "cold"):
            s, tm, raw = (results[cache, m]["seconds"] for m in ("streamed", "timm", "raw"))
            print(f"{cache}: time streamed / timm baseline  = {s / tm:.2f}  (target <= 0.5)")
            print(f"{cache}: time streamed / raw read+write = {s / raw:.2f}  (target <= 1.5)")
    finally:
        if not args.keep and args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
