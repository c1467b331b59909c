"""Test helpers that need dagster, apart from tests/helpers.py so unit tests never import it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dagster as dg

from crucible_dagster.dagster_plugin.translator import CrucibleTranslator


class PrefixTranslator(CrucibleTranslator):
    """A user's own naming: report assets under ``lab/<experiment>/<output>``."""

    def get_asset_spec(self, experiment: Any, output: Any) -> Any:
        spec = super().get_asset_spec(experiment, output)
        return spec.replace_attributes(key=dg.AssetKey(["lab", experiment.id, output.name]))


def migrate_instance(home: Path) -> None:
    """``dagster instance migrate`` on the instance of ``home``, in this process.

    What the CLI does (``DagsterInstance.upgrade``), without its subprocess: importing the
    whole CLI to create a fresh instance's tables cost about 3.5 s of CPU, once per live server
    and Celery deployment. Settings the instance reads from the environment (``env:`` in
    dagster.postgres.yaml) are read from this process's, so set them first (``postgres_home``).
    """
    from dagster._core.instance.ref import InstanceRef

    with dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home))) as instance:
        instance.upgrade()
