"""Every option's allowed values, declared once, and the checks that read them.

A value is checked up front, where it comes in (a keyword argument, a CLI flag or an
``ensemble.toml`` key), and refused in one line that says what was expected and what came in.
"""

from __future__ import annotations

# "best": the one member with the best validation accuracy; "best<K>" (best3): the uniform
# average of the K best. Not weights in the usual sense but the same kind of fit on validation,
# so the same cross-validation estimates them: that is the winner's curse, measured.
METHODS = ("uniform", "acc", "optimize", "select", "stack", "best")


def is_method(name: str) -> bool:
    """One of :data:`METHODS`, or ``best<K>`` with K >= 1."""
    return name in METHODS or best_k(name) is not None


def best_k(name: str) -> int | None:
    if name == "best":
        return 1
    if isinstance(name, str) and name.startswith("best") and name[4:].isdigit() and int(name[4:]) >= 1:
        return int(name[4:])
    return None
