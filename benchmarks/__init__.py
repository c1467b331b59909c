"""Benchmarks: `make bench` measures each figure side by side with its baseline in one run."""
