"""Plumbing with no domain knowledge: JSON-safe values and atomic file writes."""
