"""Paired timing: ours and the baseline measured side by side in one run, the two alternating.

Each repeat runs both sides, in alternating order, so drift in the machine (a busy second
core, a warm cache) touches both. Figures are min and median of wall time, with CPU time
(this process and its children) beside them, and the share of the machine's CPU that other
processes used while we measured, so a figure taken on a busy machine says so.
"""

from __future__ import annotations

import ctypes
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

PR_SET_CHILD_SUBREAPER = 36  # linux/prctl.h


@dataclass
class Timing:
    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)

    @property
    def min(self) -> float:
        return min(self.wall)

    @property
    def median(self) -> float:
        return statistics.median(self.wall)

    @property
    def cpu_median(self) -> float:
        return statistics.median(self.cpu) if self.cpu else float("nan")

    @classmethod
    def fixed(cls, seconds: float) -> Timing:
        """A goal or a published figure, not a measurement."""
        return cls([seconds], [])


def _cpu_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _machine_busy_seconds() -> float | None:
    try:
        with open("/proc/stat", encoding="ascii") as handle:
            fields = handle.readline().split()[1:]
    except OSError:
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def adopt_orphans() -> bool:
    """Make this process the reaper of orphans its commands leave (Linux): Dagster's code
    server outlives `dagster job list`, and only a reaped process's CPU time is counted, and only
    a waited-for one stops competing with the next measurement."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return bool(libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0)
    except (OSError, AttributeError):
        return False


def run_command(command: Sequence[str], *, cwd: Path, env: Mapping[str, str] | None = None) -> None:
    """Run a command until it and every process it started have exited (it gets its own
    process group; leftovers adopted through ``adopt_orphans`` are waited for too)."""
    with subprocess.Popen(
        command,
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    ) as process:
        out, err = process.communicate()
    while True:
        try:
            os.waitpid(-process.pid, 0)
        except ChildProcessError:
            break
    if process.returncode:
        raise subprocess.CalledProcessError(process.returncode, list(command), out, err)


def _measure(fn: Callable[[], object], timing: Timing) -> None:
    cpu, wall = _cpu_seconds(), time.perf_counter()
    fn()
    timing.wall.append(time.perf_counter() - wall)
    timing.cpu.append(_cpu_seconds() - cpu)


def paired(
    ours: Callable[[], object], base: Callable[[], object], repeats: int = 5, warmup: int = 1
) -> tuple[Timing, Timing, float]:
    """Both sides ``repeats`` times, alternating which goes first; returns both timings and the
    share of one core that other processes used meanwhile (0 on an idle machine)."""
    for _ in range(warmup):
        ours()
        base()
    a, b = Timing(), Timing()
    machine, own, started = _machine_busy_seconds(), _cpu_seconds(), time.perf_counter()
    for index in range(repeats):
        first, second = ((ours, a), (base, b)) if index % 2 == 0 else ((base, b), (ours, a))
        _measure(*first)
        _measure(*second)
    elapsed = time.perf_counter() - started
    after = _machine_busy_seconds()
    others = 0.0
    if machine is not None and after is not None:
        others = max(after - machine - (_cpu_seconds() - own), 0.0) / elapsed
    return a, b, others


@dataclass
class Row:
    name: str
    ours: Timing
    baseline: Timing
    baseline_name: str
    goal: str
    others_busy: float = 0.0
    unit: str = "s"
    note: str = ""  #: what the figure relies on (a second core, say)

    @property
    def ratio(self) -> float:
        return self.ours.median / self.baseline.median if self.baseline.median else float("nan")

    @property
    def ratio_min(self) -> float:
        return self.ours.min / self.baseline.min if self.baseline.min else float("nan")


def fmt(value: float, unit: str = "s") -> str:
    if unit == "s":
        return f"{value * 1000:.1f} ms" if value < 1 else f"{value:.2f} s"
    return f"{value:.3f} {unit}"


def _pair(timing: Timing, unit: str) -> str:
    if len(timing.wall) == 1:
        return fmt(timing.wall[0], unit)
    return f"{fmt(timing.min, unit)} / {fmt(timing.median, unit)}"


def rows_in_fresh_process(target: str) -> list[Row]:
    """The rows of ``package.module:function``, measured in a new interpreter: for a figure that
    must not depend on what earlier suites left in this process (threads, a large heap)."""
    module, function = target.split(":")
    code = (
        f"import dataclasses, json; from {module} import {function}; rows = {function}(); "
        f"print('\\n{_ROWS_MARK}' + json.dumps([dataclasses.asdict(r) for r in rows]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, check=True
    ).stdout
    said, _, payload = out.rpartition("\n" + _ROWS_MARK)
    if said.strip():
        print(said.strip())  # the suite's own settings lines
    return [
        Row(**{**row, "ours": Timing(**row["ours"]), "baseline": Timing(**row["baseline"])})
        for row in json.loads(payload)
    ]


_ROWS_MARK = "ROWS "


def print_rows(title: str, rows: list[Row]) -> None:
    print(f"\n== {title}")
    print(
        f"{'measure':<50} {'ours min / median':>22} {'baseline min / median':>24}  "
        f"{'ratio med (min)':>16}  {'CPU ours/base':>15}  goal     baseline"
    )
    for row in rows:
        cpu = (
            f"{fmt(row.ours.cpu_median)}/{fmt(row.baseline.cpu_median)}"
            if row.ours.cpu and row.baseline.cpu
            else "-"
        )
        ratio = f"{row.ratio:5.2f}x ({row.ratio_min:4.2f}x)"
        print(
            f"{row.name:<50} {_pair(row.ours, row.unit):>22} {_pair(row.baseline, row.unit):>24}  "
            f"{ratio:>16}  {cpu:>15}  {row.goal:<8} {row.baseline_name}"
        )
        if row.note:
            print(f"{'':<50} note: {row.note}")
        if row.others_busy > 0.25:
            print(
                f"{'':<50} note: other processes used {row.others_busy:.0%} of a core while this "
                "was measured; the figure is not from an idle machine"
            )


def rate_with_interval(hits: int, n: int) -> str:
    """A simulation study's rate with its Wilson 95% interval."""
    from crucible_dagster.feedback.quality import wilson

    found = wilson(hits, n, 0.95)
    return f"{found['share']:6.1%} [{found['low']:.1%}, {found['high']:.1%}]"
