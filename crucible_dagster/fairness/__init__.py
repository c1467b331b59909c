"""Fairness: per-group metrics and gaps, and the fairness stage."""
