"""Tasks: what a kind of model outputs and how those outputs are aligned, combined, scored and
submitted (:class:`~ensemble.tasks.base.Task`): single-label classification, regression,
multi-label classification, named entities and summarization; each further kind is a package beside them, added to :data:`TASKS`."""

from __future__ import annotations

from ensemble.tasks.base import Task
from ensemble.tasks.classification.task import CLASSIFICATION
from ensemble.tasks.columns.multilabel import MULTI_LABEL
from ensemble.tasks.columns.regression import REGRESSION
from ensemble.tasks.entities.task import ENTITIES
from ensemble.tasks.summarization.task import SUMMARIZATION

__all__ = ["Task", "TASKS", "TASK_CHOICES", "ALIASES", "DEFAULT_TASK", "task_named", "task_for_head", "shared_task", "read_as", "open_member"]

# Every task, by name. A new kind of head is served by adding its task here.
TASKS: dict[str, Task] = {t.name: t for t in (CLASSIFICATION, REGRESSION, MULTI_LABEL, ENTITIES, SUMMARIZATION)}

# Other names a task answers to (task_named); TASK_CHOICES, what --task offers: the tasks and "ner"
ALIASES = {"multi-label": "multi_label", "multilabel": "multi_label", "ner": "entities",
           "token_classification": "entities"}
TASK_CHOICES: tuple[str, ...] = (*TASKS, "ner")

# The task of a submission written without members to say it (write_submission), and of a project
# whose members' heads were not read (ensemble init).
DEFAULT_TASK: Task = CLASSIFICATION


def task_named(name: str) -> Task:
    """The task called ``name``; an error listing the tasks there are."""
    from ensemble.core.errors import EnsembleError

    key = ALIASES.get(str(name), name)
    if key not in TASKS:
        raise EnsembleError(f"task must be one of {', '.join(TASKS)}; got {name!r}")
    return TASKS[key]


def task_for_head(head) -> Task | None:
    """The task whose members have ``head`` (an :class:`~ensemble.io.modelfiles.Head`), or None
    when no task runs it yet."""
    return next((t for t in TASKS.values() if t.runs(head)), None)


def open_member(path, name: str | None = None, task=None, *, tokenizer=None):
    """The model folder ``path`` opened as a member: its task (``task``, said by the user, else the
    one its head suggests; a head no task reads is refused in one line naming it), opened for the
    forward that task runs (:func:`ensemble.inference.forwards.open_model`), its task set."""
    from dataclasses import replace
    from pathlib import Path

    from ensemble.inference.forwards import open_model
    from ensemble.io.modelfiles import head_of, read_config

    folder = Path(path)
    said = None if task is None else (task_named(task) if isinstance(task, str) else task)
    found = said
    if found is None and (folder / "config.json").is_file():
        found = task_for_head(head_of(dict(read_config(folder))))
    # a head no task reads is opened by the sequence forward, whose check (or read_as) says what is wrong
    ref = open_model(folder, found.forward if found is not None else "sequence", name, tokenizer)
    return read_as(ref, said) if said is not None or found is None else replace(ref, task=found)


def read_as(ref, task=None):
    """``ref`` (a :class:`~ensemble.inference.models.ModelRef`) with its task set: ``task`` (a Task
    or its name, said by the user) when given, which fills in what a sequence-classification head
    leaves unsaid (:meth:`Task.read_as`), else the task its head suggests."""
    from dataclasses import replace

    if task is None:
        found = task_for_head(ref.head)
        if found is None:
            from ensemble.core.errors import EnsembleError

            heads = ", ".join(h for t in TASKS.values() for h in t.heads)
            raise EnsembleError(f"{ref.folder / 'config.json'}: {ref.head.describe()}; no task reads its outputs yet "
                                f"(ensemble's tasks read {heads} heads)")
        return replace(ref, task=found)
    t = task_named(task) if isinstance(task, str) else task
    t.read_as(ref)
    return replace(ref, task=t)


def shared_task(named) -> Task:
    """The one task of ``named``, (member name, Task) pairs; members of different tasks are an
    error naming two of them."""
    from ensemble.core.errors import EnsembleError

    first: dict[str, str] = {}
    tasks = {}
    for name, task in named:
        first.setdefault(task.name, name)
        tasks[task.name] = task
    if len(first) > 1:
        (ta, a), (tb, b) = list(first.items())[:2]
        raise EnsembleError(f"members of different tasks: {a} is {ta}, {b} is {tb}; an ensemble combines members of "
                            "one task")
    return next(iter(tasks.values()))

