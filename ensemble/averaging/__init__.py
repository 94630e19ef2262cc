"""Checkpoint averaging: runs and their checkpoints ranked by a metric, sweeps, the selection,
reading the weights, the streaming build, manifests and staleness, soups and the Trainer
callbacks."""
