"""The sample's ids, written to the run directory (``dataset_ids.json``) so a later run can take
the same examples again (``sample: {ids_from: <run dir or file>}``).

Read back, the record is a surface like any other: capped in size, checked field by field, and
refused when it was written for another dataset.
"""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from crucible_dagster.common.files import atomic_write_text
from crucible_dagster.datasets.base import DatasetError, stat_or_refuse

IDS_FILE = "dataset_ids.json"
MAX_IDS_BYTES = 256 * 2**20
MAX_ID_LENGTH = 4096


class IdsRecord(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    schema_version: int = Field(ge=1, le=1)
    dataset: str
    provider: str
    fingerprint: str = Field(max_length=128)
    ids: list[str] = Field(max_length=50_000_000)


def write_ids(run_dir: str | Path, record: IdsRecord) -> Path:
    path = Path(run_dir) / IDS_FILE
    return atomic_write_text(path, record.model_dump_json())


def _ids_path(location: str) -> Path:
    path = Path(location)
    return path / IDS_FILE if path.is_dir() else path


def read_ids(location: str, dataset: str) -> list[str]:
    """The ids recorded at ``location`` (a run directory or its ids file) for ``dataset``."""
    path = _ids_path(location)
    where = f"dataset.sample.ids_from: {path}"
    found = stat_or_refuse(path, reason="ids_unreadable", where=where)
    if not stat.S_ISREG(found.st_mode):
        raise DatasetError("not a regular file", reason="ids_unreadable", where=where)
    if found.st_size > MAX_IDS_BYTES:
        raise DatasetError(
            f"{found.st_size} bytes, over the {MAX_IDS_BYTES} an ids record may hold",
            reason="ids_too_large",
            where=where,
        )
    try:
        data: Any = json.loads(path.read_bytes().decode("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DatasetError(
            f"expected the JSON ids record a run writes, found: {exc}",
            reason="ids_malformed",
            where=where,
        ) from None
    try:
        record = IdsRecord.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "(record)"
        raise DatasetError(
            f"{field}: {first['msg']}", reason="ids_malformed", where=where
        ) from None
    if record.dataset != dataset:
        raise DatasetError(
            f"recorded for dataset {record.dataset!r}, not this run's {dataset!r}",
            reason="ids_other_dataset",
            where=where,
        )
    long = next((i for i in record.ids if len(i) > MAX_ID_LENGTH), None)
    if long is not None or len(set(record.ids)) != len(record.ids):
        problem = "an id over 4096 characters" if long is not None else "duplicate ids"
        raise DatasetError(problem, reason="ids_malformed", where=where)
    return record.ids
