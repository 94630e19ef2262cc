"""Honest estimates: a procedure (weights, then an adjustment) cross-validated on resampled folds,
intervals against uniform, the sure-gain rule that keeps a fitted method, and the store that
remembers estimates by content."""
