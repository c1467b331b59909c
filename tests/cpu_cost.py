"""Where the suite's CPU goes, per test file: ``make test-cost`` (``-p tests.cpu_cost``).

The suite is CPU-bound, so its time on 2 cores is about its CPU over two: this plugin shows
which files spend it. A test's cost is its process's CPU (user and system) over the test,
setup and teardown included, plus the CPU of the subprocesses it waited for (``os.times``'
children: a subprocess's own waited-for children count in it). Processes nobody waits for
(left to init, as a killed webserver's runs may be) are not counted: the totals are a floor.

Under xdist each worker sends its totals to the controller with the worker's own output
(``workeroutput``), which prints the table: nothing is written to disk or read back.
"""

from __future__ import annotations

import os
import time
from collections import defaultdict
from typing import Any

import pytest

KEY = "crucible_cpu_cost"
SHOWN = 25


def _cpu() -> tuple[float, float]:
    t = os.times()
    return t.user + t.system, t.children_user + t.children_system


class CpuCost:
    def __init__(self) -> None:
        self.by_file: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0, 0.0])

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_protocol(self, item: pytest.Item) -> Any:
        wall, (own, children) = time.monotonic(), _cpu()
        try:
            return (yield)
        finally:
            own_after, children_after = _cpu()
            row = self.by_file[item.nodeid.split("::")[0]]
            row[0] += time.monotonic() - wall
            row[1] += own_after - own
            row[2] += children_after - children
            row[3] += 1

    def merge(self, rows: dict[str, list[float]]) -> None:
        for name, values in rows.items():
            mine = self.by_file[name]
            for i, value in enumerate(values):
                mine[i] += value

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        output = getattr(session.config, "workeroutput", None)
        if output is not None:  # an xdist worker: the controller prints
            output[KEY] = dict(self.by_file)

    @pytest.hookimpl(optionalhook=True)  # xdist's: absent with -p no:xdist
    def pytest_testnodedown(self, node: Any, error: object) -> None:
        self.merge(getattr(node, "workeroutput", {}).get(KEY, {}))

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if hasattr(terminalreporter.config, "workeroutput") or not self.by_file:
            return
        rows = sorted(self.by_file.items(), key=lambda kv: -(kv[1][1] + kv[1][2]))
        own = sum(v[1] for v in self.by_file.values())
        children = sum(v[2] for v in self.by_file.values())
        write = terminalreporter.write_line
        terminalreporter.section("CPU by test file (s)")
        write(f"all {len(rows)} files: {own + children:.0f} s of CPU, {own:.0f} in the pytest "
              f"processes and {children:.0f} in subprocesses waited for")  # fmt: skip
        write(f"{'cpu':>7} {'self':>7} {'children':>8} {'wall':>7} {'tests':>5}  file")
        for name, (wall, self_, kids, tests) in rows[:SHOWN]:
            write(f"{self_ + kids:7.1f} {self_:7.1f} {kids:8.1f} {wall:7.1f} {tests:5.0f}  {name}")


def pytest_configure(config: pytest.Config) -> None:
    config.pluginmanager.register(CpuCost(), "crucible-cpu-cost")
