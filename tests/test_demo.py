"""The README's first command cannot rot: `make demo` on a copy of the checkout, in a temporary
virtual environment that reuses this environment's packages (torch included) instead of
downloading them."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

from .conftest import require

ROOT = Path(__file__).resolve().parents[1]


def test_make_demo_on_a_clean_copy(tmp_path):
    require((ROOT / ".git").exists() and shutil.which("git") is not None and shutil.which("make") is not None,
            "needs a git checkout, git and make")
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True,
                           text=True, check=True).stdout.splitlines()
    clone = tmp_path / "clone"
    for name in files:
        src = ROOT / name
        if src.is_file():
            (clone / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, clone / name)
    assert not (clone / ".venv").exists() and not (clone / "example").exists()
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    site = next((venv / "lib").glob("python*/site-packages"))
    (site / "_reuse_parent.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    py = venv / "bin" / "python"
    install = subprocess.run([str(py), "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--no-index",
                              "-e", str(clone)], capture_output=True, text=True)
    assert install.returncode == 0, install.stderr[-2000:]
    (venv / ".installed").touch()  # the Makefile's install stamp: packages are there
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS")}
    env["HF_HUB_OFFLINE"] = "1"
    demo = subprocess.run(["make", "--no-print-directory", "demo", f"VENV={venv}"], cwd=clone, capture_output=True, text=True, env=env,
                          timeout=600)
    assert demo.returncode == 0, (demo.stdout[-3000:], demo.stderr[-3000:])
    example = clone / "example"
    submission = Path(demo.stdout.strip().splitlines()[-1])
    assert submission.parent == example / "submissions" and submission.is_file()
    assert (example / "report.html").is_file() and (example / "ensemble.toml").is_file()
    assert "auto -> " in demo.stdout and "report: " in demo.stdout
    # no line said twice: the choice and the submission path appear once each
    assert demo.stdout.count("\nauto -> ") == 1 and demo.stdout.count("adjust auto -> ") == 1
    # the submission is named twice: in the headline (the summary's first line) and as the last line
    assert demo.stdout.count(str(submission.name)) == 2
    headline = next(line for line in demo.stdout.splitlines() if line.startswith("submission "))
    assert headline.startswith(f"submission submissions/{submission.name}: ") and "on unseen data" in headline
    assert "training runs/bert-c (3 of 3" in demo.stdout  # the example says what it trains
    assert len(submission.read_text().splitlines()) == 201  # header and the 200 test rows
