"""The inputs of the feedback events a run kept, as the current sample of the drift stage
(``reliability.drift.current_from: feedback``).

Inputs that are all JSON objects (a tabular model's features) become one column per key, so
each feature is compared with the reference's column of that name; any other input is the one
text column ``input`` (a language model's prompts: its length and vocabulary are compared).
"""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Any

from crucible_dagster.runtime.stage import StageError

if TYPE_CHECKING:
    from crucible_dagster.datasets.loading import LoadedDataset


def _objects(texts: list[Any]) -> list[dict[str, Any]] | None:
    """Each input parsed as a JSON object, or None when one is not."""
    found = []
    for text in texts:
        try:
            value = json.loads(text) if isinstance(text, str) else None
        except ValueError:
            return None
        if not isinstance(value, dict):
            return None
        found.append(value)
    return found


def feedback_inputs(table_path: Any) -> LoadedDataset:
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    from crucible_dagster.datasets.loading import LoadedDataset

    if not table_path:
        raise StageError("drift_current", None, "reliability.drift.current_from: feedback: no "
                         "feedback stage kept events before the drift stage in this run")  # fmt: skip
    table = pq.read_table(str(table_path), columns=["id", "input"])
    kept = table.filter(pa.compute.is_valid(table["input"]))
    ids, texts = kept["id"].to_pylist(), kept["input"].to_pylist()
    objects = _objects(texts)
    examples = (
        pd.DataFrame(objects, index=ids) if objects else pd.DataFrame({"input": texts}, index=ids)
    )
    digest = hashlib.sha256(json.dumps([ids, texts], default=str).encode()).hexdigest()
    return LoadedDataset(
        name="feedback",
        provider="feedback",
        source=str(table_path),
        examples=examples,
        fingerprint=f"sha256:{digest[:32]}",
        id_array=pa.array([str(i) for i in ids]),
        rows_loaded=len(ids),
    )
