"""The inputs of the feedback events a run kept, as the current sample of the drift stage
(``reliability.drift.current_from: feedback``).

Inputs that are all JSON objects (a tabular model's features) become one column per key, so
each feature is compared with the reference's column of that name; any other input is the one
text column ``input`` (a language model's prompts: its length and vocabulary are compared).
"""

from __future__ import annotations

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


#: the most columns inputs may give when ``features`` does not name them: each is a test, a row
#: of the report and a line of the manifest (100 000 keys wrote 340 MB)
MAX_KEYS = 1000


def _examples(ids: list[str], texts: list[Any], features: list[str] | None) -> Any:
    import pandas as pd

    objects = _objects(texts)
    if objects is None:
        if any(isinstance(t, str) and t.lstrip().startswith("{") for t in texts):
            raise StageError("drift_current", None, "reliability.drift.current_from: feedback: "
                             "expected inputs that are all JSON objects or all text, found both")  # fmt: skip
        return pd.DataFrame({"input": texts}, index=ids)
    if features is not None:  # only the named ones are built
        objects = [{k: o[k] for k in features if k in o} for o in objects]
    keys = {k for o in objects for k in o}
    if len(keys) > MAX_KEYS:
        raise StageError("drift_current", len(keys), "reliability.drift.current_from: feedback: "
                         f"the inputs hold {len(keys)} distinct keys, over {MAX_KEYS}; name the "
                         "ones to compare in reliability.drift.features")  # fmt: skip
    return pd.DataFrame(objects, index=ids)


def feedback_inputs(table_path: Any, features: list[str] | None = None) -> LoadedDataset:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from crucible_dagster.datasets.fingerprint import fingerprint_table
    from crucible_dagster.datasets.loading import LoadedDataset

    if not table_path:
        raise StageError("drift_current", None, "reliability.drift.current_from: feedback: no "
                         "feedback stage kept events before the drift stage in this run")  # fmt: skip
    table = pq.read_table(str(table_path), columns=["id", "input"])
    kept = table.filter(pa.compute.is_valid(table["input"]))
    ids, texts = kept["id"].to_pylist(), kept["input"].to_pylist()
    if not ids:
        raise StageError("drift_current", None, "reliability.drift.current_from: feedback: no "
                         "kept feedback event has an input (see the feedback metric's counts)")  # fmt: skip
    examples = _examples(ids, texts, features)
    return LoadedDataset(
        name="feedback",
        provider="feedback",
        source=str(table_path),
        examples=examples,
        fingerprint=fingerprint_table(kept.select(["input"]), kept["id"]),  # as a dataset's
        id_array=pa.array([str(i) for i in ids]),
        rows_loaded=len(ids),
    )
