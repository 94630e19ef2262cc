"""Inference: a model folder as a member, the settings it runs with, the session that computes
its outputs over a split, and the content-keyed cache those outputs are stored in."""
