"""A trained model's evaluation: each held-out sample's score, by the dataset's sample id, so
a promotion gate can pair a challenger with the champion sample by sample.

A classifier's score is 1 for a right answer and 0 for a wrong one; a regressor's is minus the
absolute error (higher is better for both). Written as ``evaluation.parquet`` (id, target,
prediction, score) in the run directory and logged with the model.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from crucible_dagster.runtime.stage import StageError

if TYPE_CHECKING:
    import pandas as pd

EVALUATION = "evaluation.parquet"
#: an evaluation read back (from the registry) larger than this is not one of ours
MAX_EVALUATION_BYTES = 512 * 1024 * 1024


def evaluate(
    model: Any, features: Any, target: Any, ids: list[str], classification: bool
) -> pd.DataFrame:
    import numpy as np
    import pandas as pd

    predicted = model.predict(features)
    if classification:
        score = (np.asarray(predicted) == np.asarray(target)).astype(float)
    else:
        score = -np.abs(np.asarray(predicted, dtype=float) - np.asarray(target, dtype=float))
    return pd.DataFrame({"id": [str(i) for i in ids], "target": [str(t) for t in target],
                         "prediction": [str(p) for p in predicted], "score": score})  # fmt: skip


def summary(frame: pd.DataFrame, classification: bool) -> dict[str, float]:
    mean = float(frame["score"].mean())
    return {"test_accuracy": mean} if classification else {"test_mae": -mean}


def write(run_dir: Path, frame: pd.DataFrame) -> Path:
    path = run_dir / EVALUATION
    with open(path, "xb") as out:  # never over a file this run did not write
        frame.to_parquet(out, index=False)
    return path


def read(path: Path, where: str) -> dict[str, float]:
    """Sample id -> score from an evaluation file (one downloaded from the registry included):
    StageError naming ``where`` and what is wrong when it is not one."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from crucible_dagster.common.files import UnreadableFile, read_regular

    try:
        data = read_regular(path, MAX_EVALUATION_BYTES)
        table = pq.read_table(pa.BufferReader(data), columns=["id", "score"])
    except UnreadableFile as exc:
        raise StageError("unreadable_evaluation", where, f"{where}: cannot read: {exc}") from None
    except (pa.ArrowException, KeyError, ValueError) as exc:
        raise StageError("invalid_evaluation", where, f"{where}: expected a Parquet table "
                         f"with columns id and score, found: {str(exc)[:200]}") from None  # fmt: skip
    if not pa.types.is_floating(table.schema.field("score").type):
        raise StageError("invalid_evaluation", where, f"{where}: score: expected floating-point "
                         f"numbers, found {table.schema.field('score').type}")  # fmt: skip
    ids = [str(i) for i in table.column("id").to_pylist()]
    scores = table.column("score").to_pylist()
    if len(set(ids)) != len(ids):
        raise StageError("invalid_evaluation", where, f"{where}: id: expected one row per "
                         "sample, found a sample id twice")  # fmt: skip
    if any(s is None or s != s for s in scores):
        raise StageError("invalid_evaluation", where, f"{where}: score: expected a number for "
                         "every sample, found a missing or NaN score")  # fmt: skip
    return dict(zip(ids, (float(s) for s in scores), strict=True))
