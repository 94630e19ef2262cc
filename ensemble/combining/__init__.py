"""Task-free engines that combine members: one ensemble selection (Caruana et al.) taking a task's
loss. Each task's weight methods, fitted weights and adjustments are in its package under
:mod:`ensemble.tasks`."""
