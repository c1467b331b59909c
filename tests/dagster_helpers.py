"""Test helpers that need dagster, apart from tests/helpers.py so unit tests never import it."""

from __future__ import annotations

from typing import Any

import dagster as dg

from crucible_dagster.dagster_plugin.translator import CrucibleTranslator


class PrefixTranslator(CrucibleTranslator):
    """A user's own naming: report assets under ``lab/<experiment>/<output>``."""

    def get_asset_spec(self, experiment: Any, output: Any) -> Any:
        spec = super().get_asset_spec(experiment, output)
        return spec.replace_attributes(key=dg.AssetKey(["lab", experiment.id, output.name]))
