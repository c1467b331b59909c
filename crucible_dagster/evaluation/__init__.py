"""Evaluation: the predict, score and per-sample stages (a backend's answers, scored sample by sample)."""
