"""What a registered version was trained on, read from its lineage tags: the dataset as the
training file named it (``crucible.dataset_ref``) and its content hash
(``crucible.named_fingerprint``), so drift can compare recent inputs with that data, and refuse
data that changed since."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import ValidationError

from crucible_dagster.lifecycle import mlflow_store, promotion
from crucible_dagster.lifecycle.mlflow_store import TAG
from crucible_dagster.runtime.stage import StageError

if TYPE_CHECKING:
    from crucible_dagster.experiment.ir import DatasetRef, Experiment, ModelRef

DATASET_TAG = f"{TAG}dataset_ref"
FINGERPRINT_TAG = f"{TAG}named_fingerprint"


@dataclass(frozen=True)
class TrainedOn:
    model: str
    version: str
    dataset: DatasetRef
    fingerprint: str | None
    run_id: str | None


def trained_on(experiment: Experiment, model: ModelRef, root: Path, where: str) -> TrainedOn:
    """The dataset ``model``'s version (a number, or an alias: default ``champion``) was trained
    on; StageError naming ``where``, the model and version, and what is missing or wrong."""
    from mlflow.exceptions import MlflowException

    from crucible_dagster.experiment.ir import DatasetRef

    name, wanted = model.registered_name, model.version or "champion"
    with mlflow_store.client(experiment, root) as (store, _):
        version = wanted if wanted.isdigit() else promotion.alias_holder(store, name, wanted)
        if version is None:
            raise StageError("no_version", where, f"{where}: registered model {name!r} has no "
                             f"version with the alias {wanted!r}")  # fmt: skip
        try:
            tags = store.get_model_version(name, version).tags or {}
        except MlflowException as exc:
            raise StageError("unknown_version", where, f"{where}: registered model {name!r} "
                             f"version {version}: {promotion.shown(exc)}") from None  # fmt: skip
    shown = f"{where}: {name!r} version {version}"
    text = tags.get(DATASET_TAG)
    if not text:
        raise StageError("no_lineage", where, f"{shown}: tag {DATASET_TAG}: expected the "
                         "dataset it was trained on (a crucible train run registers it), found none")  # fmt: skip
    try:
        dataset = DatasetRef.model_validate_json(text)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "(the tag)"
        raise StageError("invalid_lineage", where, f"{shown}: tag {DATASET_TAG}: {field}: "
                         f"{first['msg']}") from None  # fmt: skip
    return TrainedOn(name, version, dataset, tags.get(FINGERPRINT_TAG), tags.get(f"{TAG}run_id"))
