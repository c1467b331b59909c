"""Which data a report or a trial partition was made from, recorded the way Dagster's
staleness reads it.

Dagster records an asset's input data versions when its step starts: the dataset's latest
materialization, or ``INITIAL`` when it has none. A partition backfilled (or a report
materialized) before the dataset's first materialization therefore recorded ``INITIAL``, and
once the dataset was materialized it showed "Unsynced: the dataset has a new data version",
though it was made from that very data. The step loads the dataset itself and knows its
fingerprint, so its materialization records that fingerprint as the dataset's input version
instead (Dagster's ``dagster/input_data_version/<key>`` tag). A dataset Dagster has no
materialization of gets one from the first step that loads it (the same fingerprint
``Materialize`` would record): a version compared with a dataset that has none would be
unsynced by construction.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import dagster as dg

# Dagster's own tag names for data versions and provenance (not exported by ``dagster``)
from dagster._core.definitions.data_version import (
    DATA_VERSION_IS_USER_PROVIDED_TAG,
    DATA_VERSION_TAG,
    NULL_EVENT_POINTER,
    get_input_data_version_tag,
    get_input_event_pointer_tag,
)

from crucible_dagster import Context, Experiment
from crucible_dagster.dagster_plugin.ops import dataset_observations
from crucible_dagster.dagster_plugin.translator import CrucibleTranslator


def dataset_provenance(
    context: Any,
    experiment: Experiment,
    translator: CrucibleTranslator,
    loaded: Context,
    asset_key: dg.AssetKey,
) -> dict[str, str]:
    """Log what this step loaded of the experiment's dataset (an observation, and the dataset's
    first materialization when it has none) and return the tags that record its version as
    ``asset_key``'s input; no tags when the asset does not depend on the dataset asset or the
    step loaded none."""
    return dataset_inputs(context, experiment, translator, loaded, [asset_key]).get(asset_key, {})


def dataset_inputs(
    context: Any,
    experiment: Experiment,
    translator: CrucibleTranslator,
    loaded: Context,
    asset_keys: Sequence[dg.AssetKey],
    observe: bool = True,
) -> dict[dg.AssetKey, dict[str, str]]:
    """``dataset_provenance`` for several assets of one step, each depending on the dataset
    given its tags (the dataset's first materialization is logged once). ``observe=False``:
    an earlier step of the run logged the observation already."""
    empty = Context(experiment_id=loaded.experiment_id, run_id=loaded.run_id)
    observation = next(dataset_observations(empty, loaded, experiment, translator), None)
    if observation is None:
        return {}
    key = observation.asset_key
    dependent = [k for k in asset_keys if key in _deps(context, k)]
    if not dependent:
        return {}
    version = observation.tags[DATA_VERSION_TAG]
    if observe:
        context.log_event(observation)
    latest = next(iter(context.instance.fetch_materializations(key, limit=1).records), None)
    if latest is None:
        recorder = ", ".join(k.to_user_string() for k in dependent)
        context.log_event(
            dg.AssetMaterialization(
                asset_key=key,
                description=f"Recorded by {recorder}, which loaded the "
                "dataset as named before Dagster had a version of it",
                metadata={
                    "crucible/fingerprint": observation.metadata["fingerprint"],
                    "crucible/experiment": experiment.id,
                },
                tags={DATA_VERSION_TAG: version, DATA_VERSION_IS_USER_PROVIDED_TAG: "true"},
            )
        )
    same = latest is not None and _version(latest.event_log_entry.tags) == version
    tags = {
        get_input_data_version_tag(key): version,
        # the dataset's event holding this version, when Dagster has it already
        get_input_event_pointer_tag(key): str(latest.storage_id)
        if same and latest is not None
        else NULL_EVENT_POINTER,
    }
    return {k: tags for k in dependent}


def _deps(context: Any, asset_key: dg.AssetKey) -> set[dg.AssetKey]:
    """The assets ``asset_key`` depends on, as its definition declares them."""
    spec = context.assets_def.specs_by_key[asset_key]
    return {dep.asset_key for dep in spec.deps}


def _version(tags: Mapping[str, str] | None) -> str | None:
    return (tags or {}).get(DATA_VERSION_TAG)
