"""Tasks: what a kind of model outputs and how those outputs are aligned, combined, scored and
submitted (:class:`~ensemble.tasks.base.Task`). Single-label classification is the first; each
further kind is a module beside it, added to :data:`TASKS`."""

from __future__ import annotations

from ensemble.tasks.base import Task
from ensemble.tasks.classification import CLASSIFICATION

__all__ = ["Task", "TASKS", "task_named", "task_for_head"]

# Every task, by name. A new kind of head is served by adding its task here.
TASKS: dict[str, Task] = {CLASSIFICATION.name: CLASSIFICATION}


def task_named(name: str) -> Task:
    """The task called ``name``; an error listing the tasks there are."""
    from ensemble.core.errors import EnsembleError

    if name not in TASKS:
        raise EnsembleError(f"task must be one of {', '.join(TASKS)}; got {name!r}")
    return TASKS[name]


def task_for_head(head) -> Task | None:
    """The task whose members have ``head`` (an :class:`~ensemble.io.modelfiles.Head`), or None
    when no task runs it yet."""
    return next((t for t in TASKS.values() if t.runs(head)), None)
