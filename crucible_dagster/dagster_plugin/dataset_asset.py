"""The dataset an experiment names, as a materializable asset every experiment naming it shares.

Materializing it loads the dataset as named (provider, path, split, schema: before any
experiment's ``limit``, ``sample`` or ``folds``, which are the experiment's, not the dataset's)
and records its content fingerprint as the data version, with the row count, the column schema
and where it was read as metadata. Nothing is copied: the data stays where the provider reads it;
a run loads it again in its first step and observes the same data version, so a report made from
other data shows as stale. One kind for every provider: a provider's data changes outside
Dagster (a file rewritten, a hub revision), and materializing is the button that looks again.
"""

from __future__ import annotations

import json
from typing import Any

import dagster as dg

from crucible_dagster.experiment.ir import DatasetRef
from crucible_dagster.experiment.names import suggest_name

#: the metadata key holding the dataset as declared: two experiments that name one dataset
#: differently are told apart by it
DECLARED = "crucible/declared"


def declared(ref: DatasetRef) -> str:
    """The dataset as named, as JSON (without the experiment's own limit, sample and folds)."""
    named = ref.model_dump(mode="json", by_alias=True, exclude={"limit", "sample", "folds"})
    return json.dumps(named, sort_keys=True)


def dataset_metadata(loaded: Any) -> dict[str, Any]:
    """Row count and column schema (Dagster's own keys, shown in the catalog), fingerprint and
    where the data was read."""
    examples = loaded.examples
    columns = [dg.TableColumn(str(examples.index.name or "id"), "string", description="the id")]
    columns += [dg.TableColumn(str(n), str(t)) for n, t in examples.dtypes.items()]
    return {
        "dagster/row_count": dg.MetadataValue.int(len(examples)),
        "dagster/column_schema": dg.MetadataValue.table_schema(dg.TableSchema(columns=columns)),
        "crucible/fingerprint": loaded.named_fingerprint or loaded.fingerprint,
        "crucible/source": dg.MetadataValue.text(str(loaded.source)),
        "crucible/provider": loaded.provider,
    }


def dataset_asset(spec: dg.AssetSpec, ref: DatasetRef) -> dg.AssetsDefinition:
    """The materializable asset of ``spec`` (its key, description, group and metadata)."""
    spec = spec.merge_attributes(metadata={DECLARED: declared(ref)})

    @dg.multi_asset(specs=[spec], name=f"materialize__{suggest_name('__'.join(spec.key.path))}")
    def materialize_dataset(context) -> dg.MaterializeResult:
        # (no annotation: dagster inspects it, and this module's annotations are strings)
        from crucible_dagster.datasets import DatasetError, load_as_named

        try:
            loaded = load_as_named(ref)
        except DatasetError as exc:
            raise dg.Failure(
                description=f"dataset {ref.name!r} cannot be loaded: {exc}",
                metadata={"crucible/reason": exc.reason, "crucible/where": exc.where or ""},
                allow_retries=False,
            ) from None
        fingerprint = loaded.named_fingerprint or loaded.fingerprint
        context.log.info(f"dataset {ref.name!r}: {len(loaded.examples)} rows, {fingerprint}")
        return dg.MaterializeResult(
            asset_key=spec.key,
            data_version=dg.DataVersion(fingerprint[:32]),
            metadata=dataset_metadata(loaded),
        )

    return materialize_dataset
