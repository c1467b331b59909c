"""``make test-cost``'s plugin counts each file's CPU, its subprocesses' included."""

from __future__ import annotations

import re

import pytest

pytest_plugins = ["pytester"]

BURNS = """
import subprocess, sys

def test_a_subprocess_burns_cpu():
    subprocess.run([sys.executable, "-c", "sum(range(20_000_000))"], check=True)

def test_the_process_burns_cpu():
    sum(range(20_000_000))
"""


@pytest.mark.slow
def test_the_table_counts_each_files_own_and_subprocess_cpu(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_burns=BURNS, test_idle="def test_nothing():\n    pass\n")
    result = pytester.runpytest_inprocess("-p", "tests.cpu_cost", "-p", "no:xdist")
    result.assert_outcomes(passed=3)
    table = result.stdout.str()
    assert "CPU by test file (s)" in table, table
    rows = {
        m["file"]: (float(m["own"]), float(m["children"]), int(m["tests"]))
        for m in re.finditer(
            r"^ *[\d.]+ +(?P<own>[\d.]+) +(?P<children>[\d.]+) +[\d.]+ +(?P<tests>\d+)  (?P<file>\S+)$",
            table,
            re.MULTILINE,
        )
    }
    own, children, tests = rows["test_burns.py"]
    assert tests == 2 and own >= 0.1 and children >= 0.1, rows  # each loop is ~0.5 s of CPU
    assert rows["test_idle.py"][1] == 0.0 and rows["test_idle.py"][2] == 1, rows
    assert list(rows) == ["test_burns.py", "test_idle.py"]  # the costliest first
