"""Combining members: the weight methods (uniform, acc, optimize, select, stack, best<K>), the
fitted weights, and class-prior adjustments of the combined probabilities."""
