"""The one exception type that the CLI turns into a one-line message and exit code 1, and how
its messages say which option fixes a problem in the face the user is in: the CLI flag under
the CLI, the keyword argument in the library, the key of ensemble.toml when a project file says
what the flag would."""

from __future__ import annotations

import contextlib
import contextvars
from dataclasses import dataclass
from pathlib import Path

__all__ = ['EnsembleError', 'option', 'direction_fix', 'cli_face', 'cli_messages', 'project_messages', 'project_scope', 'in_project', 'project_members', 'named', 'flag', 'data_fix', 'folds_fix', 'outputs_fix']


class EnsembleError(Exception):
    """A user-facing error: bad input, a missing file, a refused overwrite.

    The message is one line that names the file and says how to fix it. The CLI prints it
    as ``error: <message>`` and exits with status 1; library callers can catch it.
    """

    def __init__(self, message: str):
        if "\n" in message:
            raise ValueError("EnsembleError messages must be one line")
        super().__init__(message)


@dataclass(frozen=True)
class _Face:
    cli: bool = False
    project: Path | None = None  # the ensemble.toml the command reads its data and members from
    members: frozenset | None = None  # the names of its members, as it lists them


_FACE = contextvars.ContextVar("ensemble_face", default=_Face())
# Options a project file sets, and the table they are set in.
_PROJECT_KEYS = {"text": "data", "label": "data", "id": "data", "encoding": "data", "quoting": "data",
                 "weights": "vote", "combine": "vote", "adjust": "vote", "prior": "vote", "adjust_metric": "vote",
                 "class_order": "vote", "folds": "data", "fold_column": "data", "max_length": "predict",
                 "batch_size": "predict", "pad_to_multiple_of": "predict", "device": "predict", "dtype": "predict"}
# Options a project file sets per member, in its [models] or [runs] entry (or [runs] only).
_MEMBER_KEYS = {"trust_remote_code": "[models] or [runs]", "k": "[runs]", "metric": "[runs]",
                "refit_of": "[models] or [runs]"}


def _toml(value: str) -> str:
    """``value`` as ensemble.toml writes it: true/false, a number, else a quoted string."""
    if value in ("True", "False"):
        return value.lower()
    return value if value.lstrip("-").isdigit() else f'"{value}"'


def option(name: str, value: str = "True") -> str:
    """How a message tells the user to set option ``name`` to ``value``: ``pass --name value``
    under the CLI (``pass --force`` for a switch), ``pass name=value`` in the library, and
    ``set name = "value" in [table] of ensemble.toml`` when a project file is in use and sets it."""
    face = _FACE.get()
    flag = f"pass --{name.replace('_', '-')}" + ("" if value == "True" else f" {value}")
    if face.project is not None and name in _MEMBER_KEYS:
        key = f"set {name} = {_toml(value)} in its {_MEMBER_KEYS[name]} entry of {face.project}"
        if name == "trust_remote_code" and not face.cli:
            return f"{key} (or pass --trust-remote-code to ensemble run)"
        return f"{flag}, or {key}" if face.cli and name != "refit_of" else key
    if face.project is not None and name in _PROJECT_KEYS:
        key = f'set {name} = "{value}" in [{_PROJECT_KEYS[name]}] of {face.project}'
        return f"{flag}, or {key}" if face.cli else key  # a command with the flag, or `ensemble run`
    if face.cli:
        return flag
    return f"pass {name}={value}"


def named(name: str) -> str:
    """Option ``name`` as the user's face spells it: ``--name`` under the CLI, ``[table] name of
    ensemble.toml`` when a project file sets it, else the keyword ``name``."""
    face = _FACE.get()
    if face.cli:
        return f"--{name.replace('_', '-')}"
    if face.project is not None and name in _PROJECT_KEYS:
        return f"[{_PROJECT_KEYS[name]}] {name} of {face.project}"
    return name


def flag(name: str, value=None) -> str:
    """Option ``name`` (set to ``value``) as the user's face spells it in a message:
    ``--name value`` on the command line, ``name=value`` in the library. (A fix that a project
    file can also make is :func:`option`'s.)"""
    if _FACE.get().cli:
        return f"--{name.replace('_', '-')}" + ("" if value is None else f" {value}")
    return name + ("" if value is None else f"={value}")


def data_fix(split: str, what: str = "PATH") -> str:
    """How to give split ``split`` of the data, in the face the user is in."""
    face = _FACE.get()
    if face.cli:
        return f"pass --data {split}={what}"
    if face.project is not None:
        return f'set {split} = "{what}" in [data] of {face.project}'
    return f"pass data={{{split!r}: {what}}}"


def folds_fix(train: str = "train", with_data: bool = True) -> str:
    """How to give a fold group's folds file (and the training split), in the face the user is in."""
    face = _FACE.get()
    if face.cli:
        return "pass --folds FILE" + (f" and --data {train}=PATH" if with_data else "")
    if face.project is not None:
        return 'set folds = "FILE"' + (f' and {train} = "PATH"' if with_data else "") + f" in [data] of {face.project}"
    return "pass folds=FILE" + (f" and data={{{train!r}: PATH, ...}}" if with_data else "")


def direction_fix() -> str:
    """How to say which way a metric is better, in the face the user is in."""
    face = _FACE.get()
    if face.cli:
        return "pass --greater-is-better or --lower-is-better"
    if face.project is not None:
        return f"set greater_is_better = true or false in the [runs] entry of {face.project}"
    return "pass greater_is_better=True or False"


def cli_face() -> bool:
    """Whether the current command is the CLI's (its messages name flags)."""
    return _FACE.get().cli


def in_project() -> Path | None:
    """The project file the current command reads, if any (for messages)."""
    return _FACE.get().project


@contextlib.contextmanager
def cli_messages():
    """Context: messages name CLI flags while it is active (the CLI's commands run in it)."""
    token = _FACE.set(_Face(cli=True))
    try:
        yield
    finally:
        _FACE.reset(token)


def project_members() -> frozenset | None:
    """The member names of the project file the current command reads (None: no project, or
    not said)."""
    return _FACE.get().members


def project_messages(path: str | Path | None, members=None) -> None:
    """Within :func:`cli_messages` (or any context), say that the command reads ``path`` (whose
    members are ``members``): the messages that follow name its keys. Undone when the enclosing
    context ends."""
    if path is not None:
        _FACE.set(_Face(cli=_FACE.get().cli, project=Path(path),
                        members=None if members is None else frozenset(members)))


@contextlib.contextmanager
def project_scope(path: str | Path, members=None):
    """Context: messages name the keys of project file ``path`` (whose members are ``members``)
    and no flag (``ensemble run``, which has none of the data and vote flags)."""
    token = _FACE.set(_Face(cli=False, project=Path(path), members=None if members is None else frozenset(members)))
    try:
        yield
    finally:
        _FACE.reset(token)


# Member, split and output names: they become file names, so no path separators and no "..".
NAME_RULE = "letters, digits, '_', '-', '.' or '+'"


def is_name(name) -> bool:
    """A name that is safe as a file name: :data:`NAME_RULE`, not starting with '.', '-' or '+'."""
    import re

    return isinstance(name, str) and re.fullmatch(r"[\w][\w.+-]*", name) is not None and ".." not in name


def outputs_fix(member: str, names) -> str:
    """How to say, once, which label column each of ``member``'s outputs is (in its head's
    order), in the face the user is in."""
    face = _FACE.get()
    listed = ",".join(names)
    if face.project is not None and (face.members is None or member in face.members):
        key = (f"set outputs = [{', '.join(chr(34) + n + chr(34) for n in names)}] in its [models] or [runs] entry "
               f"of {face.project}")
        return f"pass --outputs {member}={listed}, or {key}" if face.cli else key
    if face.cli:
        return f"pass --outputs {member}={listed}"
    return f"pass outputs={{{member!r}: {list(names)!r}}}"
