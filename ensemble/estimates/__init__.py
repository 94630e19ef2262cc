"""What every task's honest estimate shares: resampled folds, intervals against uniform, the
sure-gain rule that keeps a fitted method, the holdout's bookkeeping, the decompositions of a fold
mean's error, the headline, and the store that remembers estimates by content. Each task
cross-validates its own procedure (``ensemble.tasks.<task>.estimate``)."""
