"""Test helpers that need dagster, apart from tests/helpers.py so unit tests never import it."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import dagster as dg

from crucible_dagster.dagster_plugin.translator import CrucibleTranslator


class PrefixTranslator(CrucibleTranslator):
    """A user's own naming: report assets under ``lab/<experiment>/<output>``."""

    def get_asset_spec(self, experiment: Any, output: Any) -> Any:
        spec = super().get_asset_spec(experiment, output)
        return spec.replace_attributes(key=dg.AssetKey(["lab", experiment.id, output.name]))


def instance_at(home: Path | str) -> dg.DagsterInstance:
    """The instance of the DAGSTER_HOME folder ``home``, opened from its dagster.yaml as another
    process (a server, a CLI, a run) opens it; a context manager that disposes it."""
    from dagster._core.instance.ref import InstanceRef

    return dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home)))


def migrate_instance(home: Path) -> None:
    """``dagster instance migrate`` on the instance of ``home``, in this process.

    What the CLI does (``DagsterInstance.upgrade``), without its subprocess: importing the
    whole CLI to create a fresh instance's tables cost about 3.5 s of CPU, once per live server
    and Celery deployment. Settings the instance reads from the environment (``env:`` in
    dagster.postgres.yaml) are read from this process's, so set them first (``postgres_home``).
    """
    with instance_at(home) as instance:
        instance.upgrade()


#: Dagster's own test instance captures each run's stdout and stderr to files through a ``tail``
#: and a watcher process per stream (four processes a run, about 0.1 s): no test reads them.
NO_LOG_CAPTURE = {
    "compute_logs": {
        "module": "dagster._core.storage.noop_compute_log_manager",
        "class": "NoOpComputeLogManager",
    }
}


def instance_for_test(**kwargs: Any) -> contextlib.AbstractContextManager[dg.DagsterInstance]:
    """``dg.instance_for_test`` without capturing the runs' stdout and stderr (``NO_LOG_CAPTURE``);
    the events, runs and storage are the same SQLite instance's."""
    overrides = {**NO_LOG_CAPTURE, **(kwargs.pop("overrides", None) or {})}
    return dg.instance_for_test(overrides=overrides, **kwargs)


@contextlib.contextmanager
def ephemeral_instance() -> Iterator[dg.DagsterInstance]:
    """Dagster's in-memory instance, as ``execute_in_process`` makes when given none, kept for
    the test to read its runs, events and checks back; DAGSTER_HOME is a temporary folder.

    For a test that executes in this process and whose point is not the storage: SQLite's event
    storage opens a database engine per event, which made a quarter of such tests' CPU (the
    integration tests that run in process took 227 s of CPU on SQLite, 199 s in memory). A
    multiprocess executor or a re-execution refuses it: use ``instance_for_test`` there, and
    where SQLite itself is what the test is about.
    """
    with (
        tempfile.TemporaryDirectory() as home,
        mock.patch.dict(os.environ, {"DAGSTER_HOME": home}),
        dg.DagsterInstance.ephemeral(tempdir=home) as instance,
    ):
        yield instance
