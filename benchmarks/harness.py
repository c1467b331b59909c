"""Tiny timing harness: median of repeats, and one printed row per comparison."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass


def median_seconds(fn: Callable[[], object], repeats: int = 5, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


@dataclass
class Row:
    name: str
    ours: float
    baseline: float
    baseline_name: str
    goal: str
    unit: str = "s"

    @property
    def ratio(self) -> float:
        return self.ours / self.baseline if self.baseline else float("nan")


def fmt(value: float, unit: str) -> str:
    if unit == "s":
        return f"{value * 1000:9.2f} ms" if value < 1 else f"{value:9.3f} s "
    return f"{value:9.3f} {unit}"


def print_rows(title: str, rows: list[Row]) -> None:
    print(f"\n== {title}")
    print(f"{'measure':<52} {'ours':>12} {'baseline':>12}  {'ratio':>7}  goal   (baseline)")
    for row in rows:
        print(
            f"{row.name:<52} {fmt(row.ours, row.unit):>12} {fmt(row.baseline, row.unit):>12}  "
            f"{row.ratio:6.2f}x  {row.goal:<6} ({row.baseline_name})"
        )
