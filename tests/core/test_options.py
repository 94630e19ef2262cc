"""The options table: one place for every option's allowed values, read by the CLI, the project
file and the library alike."""

from __future__ import annotations

import click
import pytest

from ensemble.core.errors import EnsembleError, cli_messages
from ensemble.core.options import ALLOWED, METHODS, WEIGHTS_EXPECTED, best_k, check_option, is_method, weights_kind


def test_check_option_names_the_option_for_the_face():
    assert check_option("combine", "logit") == "logit"
    with pytest.raises(EnsembleError, match=r"^combine must be one of prob, logit, geometric, vote, rank; got 'mean'$"):
        check_option("combine", "mean")
    with cli_messages(), pytest.raises(EnsembleError, match=r"^--adjust-metric must be one of accuracy, macro_f1"):
        check_option("adjust_metric", "f1")
    with pytest.raises(EnsembleError, match=r"adjust must be one of none, prior, fit; got 'auto'"):
        check_option("adjust", "auto", exclude=("auto",))
    with pytest.raises(EnsembleError, match=r"^method must be one of uniform, greedy; got 'soup'"):
        check_option("soup", "soup", called="method")


def _choices(command: click.Command) -> dict[str, tuple]:
    return {p.name: tuple(p.type.choices) for p in command.params if isinstance(p.type, click.Choice)}


def test_the_cli_offers_exactly_the_tables_values():
    """Each --option with a fixed set of values is a click.Choice of the table's values."""
    from ensemble.cli import main

    seen = {}
    for name, command in main.commands.items():
        for sub in ([command] if not isinstance(command, click.Group) else command.commands.values()):
            for option, choices in _choices(sub).items():
                seen.setdefault(option, set()).add(choices)
    from ensemble.tasks import TASK_CHOICES

    as_table = {"method": "soup"}
    tables = {**ALLOWED, "task": TASK_CHOICES}  # --task offers the registered tasks (and "ner")
    for option, choices in seen.items():
        assert choices == {tables[as_table.get(option, option)]}, option


def test_the_project_file_reads_the_same_table(tmp_path):
    from ensemble.cli.project import load_project

    for key in ("combine", "adjust", "adjust_metric"):
        path = tmp_path / "ensemble.toml"
        path.write_text(f'[vote]\n{key} = "nope"\n', encoding="utf-8")
        with pytest.raises(EnsembleError, match=rf"{key}: must be one of {', '.join(ALLOWED[key])}, got 'nope'"):
            load_project(path)


def test_weight_methods_and_specs(tmp_path):
    assert [is_method(m) for m in (*METHODS, "best3", "best0", "bestest", "auto")] == [True] * 7 + [False] * 3
    assert best_k("best") == 1 and best_k("best12") == 12 and best_k("best0") is None
    (tmp_path / "w").write_text("{}")
    assert weights_kind("auto") == weights_kind("stack") == "method"
    assert weights_kind("w.json") == weights_kind(str(tmp_path / "w")) == "file"
    assert weights_kind("0.7,0.3") == "fixed" and weights_kind("heavy") == "unknown"
    assert "best<K>" in WEIGHTS_EXPECTED and all(m in WEIGHTS_EXPECTED for m in METHODS)
