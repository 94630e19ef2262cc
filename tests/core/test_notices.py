"""What a user must know reaches a plain script or a notebook that never configured logging: the
vote's headline, auto's choice and the file to submit, printed once; and once only where logging
is configured."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = """
import logging, sys
from pathlib import Path
sys.path.insert(0, {root!r})
from tests.synthetic_members import make_task_members
if {configured}:
    logging.basicConfig(level=logging.INFO, format="LOG %(message)s")
root = Path({where!r})
members, data, cache_dir, columns, names = make_task_members({task!r}, root)
from ensemble import vote
vote(members, data, "auto", cache_dir=cache_dir, columns=columns, submissions_dir=root / "s", weights_dir=root / "w")
"""


@pytest.mark.parametrize("task", ["classification", "regression"])
@pytest.mark.parametrize("configured", [False, True])
def test_the_headline_and_autos_choice_reach_a_script_once(task, configured, tmp_path):
    code = SCRIPT.format(root=str(ROOT), configured=configured, where=str(tmp_path / "w"), task=task)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    said = out.stderr
    headline = [line for line in said.splitlines() if "submission " in line and "on unseen data" in line]
    auto = [line for line in said.splitlines() if "auto -> " in line]
    pointer = [line for line in said.splitlines() if "latest.json points at" in line]
    assert len(headline) == 1 and len(auto) == 1 and len(pointer) == 1, said
    assert headline[0].startswith("LOG ") == configured  # through logging when configured, else printed
