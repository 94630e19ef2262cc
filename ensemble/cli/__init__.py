"""The ``ensemble`` command: thin click wrappers over the workflows, the project file
(``ensemble.toml``), ``init``, ``run`` and ``example``."""

from ensemble.cli import commands  # noqa: F401  (registers the commands on main)
from ensemble.cli.main import main

__all__ = ["main"]
