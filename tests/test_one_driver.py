"""The run choreography exists once: only the run driver opens and ends run records.

Every way to run (the standalone runner, the Dagster stage op, the three sweep forms, the IO
manager failing a run) goes through ``crucible_dagster.runtime.driver``. A reader can repeat
this: the test reads the package's source, nothing is mocked.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from crucible_dagster.experiment.ir import Experiment
from crucible_dagster.runtime.context import DEFAULT_SEED, Context
from crucible_dagster.runtime.driver import Run
from crucible_dagster.runtime.run_record import read_manifest
from tests.source_scan import PACKAGE, nodes, python_files

#: the driver, and the record it is built on (split by role: ``run_record*.py``)
OWNERS = {"runtime/driver.py"}
#: what opens, lists, records and ends a run record
LIFE = {"create", "open", "finish", "finish_context", "abort", "record_stage", "mark_completed"}


def _owner(path: Path) -> bool:
    relative = path.relative_to(PACKAGE).as_posix()
    return relative in OWNERS or relative.startswith("runtime/run_record")


def _life_calls(path: Path, root: Path = PACKAGE) -> list[str]:
    """Each ``RunRecord`` named, and each call of a record's life method, as ``file:line``."""
    found = []
    for node in nodes(path):
        named = isinstance(node, ast.Name) and node.id == "RunRecord"
        imported = isinstance(node, ast.alias) and node.name == "RunRecord"
        called = (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in LIFE - {"create", "open"}
        )
        if named or imported or called:
            found.append(f"{path.relative_to(root)}:{getattr(node, 'lineno', '?')}")
    return found


def test_only_the_driver_opens_records_and_ends_runs() -> None:
    offenders = [
        where for path in python_files() if not _owner(path) for where in _life_calls(path)
    ]
    assert offenders == [], f"run records opened or ended outside the driver: {offenders}"


def test_the_scan_sees_a_record_ended_by_hand(tmp_path: Path) -> None:
    """The check above can fail: a module that ends a record itself is found."""
    by_hand = tmp_path / "by_hand.py"
    by_hand.write_text(
        "from crucible_dagster.runtime.run_record import RunRecord\n"
        "def end(record):\n    record.finish('completed')\n",
        encoding="utf-8",
    )
    assert _life_calls(by_hand, tmp_path) == ["by_hand.py:1", "by_hand.py:3"]


def test_an_exception_anywhere_in_a_run_ends_it(tmp_path: Path) -> None:
    """``with run:`` ends the record on any exit: an error ``failed``, an interrupt ``interrupted``."""
    experiment = Experiment.model_validate({"id": "e", "pipeline": [{"name": "validate"}]})
    for exc, status in ((ValueError("boom"), "failed"), (KeyboardInterrupt(), "interrupted")):
        run = Run.at(tmp_path, experiment, run_id=status)
        with pytest.raises(type(exc)), run:
            raise exc
        manifest = read_manifest(tmp_path / "e" / status)
        assert manifest["status"] == status
        assert manifest["failure"]["error_type"] == type(exc).__name__


def test_the_seed_has_one_home_and_one_default() -> None:
    plain = Experiment.model_validate({"id": "e", "pipeline": [{"name": "validate"}]})
    seeded = plain.model_copy(update={"seed": 7})
    assert Context("e", "r", experiment=plain).seed == DEFAULT_SEED == 0
    assert Context("e", "r", experiment=seeded).seed == 7
    assert Context("e", "r").seed == DEFAULT_SEED
