"""Tasks: what a kind of model outputs and how those outputs are aligned, combined, scored and
submitted (:class:`~ensemble.tasks.base.Task`): single-label classification, regression and
multi-label classification; each further kind is a module beside them, added to :data:`TASKS`."""

from __future__ import annotations

from ensemble.tasks.base import Task
from ensemble.tasks.classification.task import CLASSIFICATION
from ensemble.tasks.columns.multilabel import MULTI_LABEL
from ensemble.tasks.columns.regression import REGRESSION

__all__ = ["Task", "TASKS", "task_named", "task_for_head", "shared_task", "read_as"]

# Every task, by name. A new kind of head is served by adding its task here.
TASKS: dict[str, Task] = {t.name: t for t in (CLASSIFICATION, REGRESSION, MULTI_LABEL)}


def task_named(name: str) -> Task:
    """The task called ``name``; an error listing the tasks there are."""
    from ensemble.core.errors import EnsembleError

    key = {"multi-label": "multi_label", "multilabel": "multi_label"}.get(str(name), name)
    if key not in TASKS:
        raise EnsembleError(f"task must be one of {', '.join(TASKS)}; got {name!r}")
    return TASKS[key]


def task_for_head(head) -> Task | None:
    """The task whose members have ``head`` (an :class:`~ensemble.io.modelfiles.Head`), or None
    when no task runs it yet."""
    return next((t for t in TASKS.values() if t.runs(head)), None)


def read_as(ref, task=None):
    """``ref`` (a :class:`~ensemble.inference.models.ModelRef`) with its task set: ``task`` (a Task
    or its name, said by the user) when given, which fills in what a sequence-classification head
    leaves unsaid (:meth:`Task.read_as`), else the task its head suggests."""
    from dataclasses import replace

    if task is None:
        found = task_for_head(ref.head)
        if found is None:  # inference.models.check_head refused it already; this is the tasks' word
            from ensemble.core.errors import EnsembleError

            raise EnsembleError(f"{ref.folder / 'config.json'}: {ref.head.describe()}; no task reads its outputs")
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

