"""The per-sample table the predict, ensemble, score and fairness stages share.

One row per (variant, sample): ``variant, sample_id, seed, prediction, reference, confidence,
latency_ms, prompt_tokens, completion_tokens, cost, cached, error, backend, extra_requests``,
and ``score`` once scored. It lives in ``assigns["predictions"]`` and, written by each stage
that changes it, as ``predictions.parquet`` in the run directory.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from pydantic import Field

from crucible_dagster.backends.base import Request, Response
from crucible_dagster.backends.registry import BackendError, check_backend
from crucible_dagster.common.files import atomic_write_with
from crucible_dagster.experiment.ir import BackendRef
from crucible_dagster.runtime.context import Context
from crucible_dagster.runtime.run_dirs import report_base
from crucible_dagster.runtime.stage import StageError, StageOptions

if TYPE_CHECKING:
    import pandas as pd

TABLE_KEY = "predictions"
TABLE_FILE = "predictions.parquet"
COLUMNS = (
    "variant", "sample_id", "seed", "prediction", "reference", "confidence", "latency_ms",
    "prompt_tokens", "completion_tokens", "cost", "cached", "error", "backend", "extra_requests",
)  # fmt: skip


def uniform(values: Sequence[Any]) -> list[Any]:
    """Values of one Parquet column: kept when all are numbers (or None), else all as text."""
    if all(v is None or (isinstance(v, int | float) and not isinstance(v, bool)) for v in values):
        return list(values)
    # pandas reads a missing text as NaN: a sample without an answer stays without one, never
    # the text 'nan'
    return [None if v is None or (isinstance(v, float) and v != v) else str(v) for v in values]


def rows_for(
    variant: str, responses: Iterable[Response], references: dict[str, Any], seed: int | None
) -> list[dict[str, Any]]:
    return [
        {
            "variant": variant,
            "sample_id": r.sample_id,
            "seed": seed,
            "prediction": r.output,
            "reference": references.get(r.sample_id),
            "confidence": r.confidence,
            "latency_ms": r.latency_ms,
            "prompt_tokens": r.prompt_tokens,
            "completion_tokens": r.completion_tokens,
            "cost": r.cost,
            "cached": r.cached,
            "error": r.error,
            "backend": r.backend,
            "extra_requests": r.extra_requests,
        }
        for r in responses
    ]


def as_table(rows: list[dict[str, Any]]) -> pd.DataFrame:
    import pandas as pd

    # a table the score stage already scored keeps its score columns
    scores = [c for c in rows[0] if c == "score" or c.startswith("score_")] if rows else []
    frame = pd.DataFrame(rows, columns=[*COLUMNS, *scores])
    for column in ("prediction", "reference"):
        frame[column] = pd.Series(uniform(frame[column].tolist()), dtype=object)
    return frame


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """The table's rows as dicts keyed by column name."""
    return cast(list[dict[str, Any]], frame.to_dict("records"))


def table_of(ctx: Context, stage: str) -> pd.DataFrame:
    import pandas as pd

    frame = ctx.assigns.get(TABLE_KEY)
    if not isinstance(frame, pd.DataFrame):
        raise StageError(
            "missing_predictions",
            None,
            f"{stage} needs assigns['{TABLE_KEY}'], the per-sample table: run the predict stage first",
        )
    return frame


def save_table(ctx: Context, frame: pd.DataFrame) -> Context:
    """The table in assigns and in the run directory (Parquet), its path as an artifact."""
    path = atomic_write_with(
        Path(report_base(ctx)) / TABLE_FILE, lambda tmp: frame.to_parquet(tmp, index=False)
    )
    return ctx.assign(TABLE_KEY, frame).put_artifact(TABLE_KEY, str(path))


def latency_summary(latencies: Sequence[float]) -> dict[str, float]:
    import numpy as np

    values = np.asarray(latencies, dtype=float)
    if not values.size:
        return {}
    p50, p99, p999 = np.quantile(values, [0.5, 0.99, 0.999])
    return {
        "p50_ms": float(p50),
        "p99_ms": float(p99),
        "p999_ms": float(p999),
        "max_ms": float(values.max()),
    }


class SampleSource(StageOptions):
    """Where a stage finds its samples and their references."""

    inputs: str = Field(default="features", description="assigns key of the samples.")
    input_field: str = Field(default="input", description="For a list of examples: what is sent.")
    reference: str | None = Field(
        default="target",
        description="assigns key of the references (an array aligned with the samples), or for a "
        "list of examples the field holding each one's reference.",
    )


def checked_backends(cls: Any, value: dict[str, BackendRef] | None) -> dict[str, BackendRef] | None:
    """A validator: every named backend resolves and its options validate."""
    for name, ref in (value or {}).items():
        try:
            check_backend(ref, where=name)
        except BackendError as exc:
            raise ValueError(str(exc)) from None
    return value


def samples_of(ctx: Context, options: SampleSource) -> tuple[list[Request], dict[str, Any], Any]:
    import numpy as np
    import pandas as pd

    data = ctx.assigns.get(options.inputs)
    if isinstance(data, pd.DataFrame):
        ids = [str(i) for i in data.index]
        requests = [Request(i, row) for i, row in zip(ids, data.to_dict("records"), strict=True)]
        reference = ctx.assigns.get(options.reference) if options.reference else None
        refs = (
            {} if reference is None else dict(zip(ids, np.asarray(reference).tolist(), strict=True))
        )
        return requests, refs, data
    if isinstance(data, list) and all(isinstance(e, dict) for e in data):
        requests, refs = [], {}
        for index, example in enumerate(data):
            if options.input_field not in example:
                raise StageError(
                    "missing_field",
                    index,
                    f"assigns['{options.inputs}'][{index}] has no field {options.input_field!r}",
                )
            sample_id = str(example.get("id", index))
            requests.append(Request(sample_id, example[options.input_field]))
            if options.reference and options.reference in example:
                refs[sample_id] = example[options.reference]
        return requests, refs, None
    raise StageError(
        "missing_samples",
        options.inputs,
        f"predict needs assigns['{options.inputs}']: a DataFrame of feature rows or a list of "
        f"examples (dicts), got {type(data).__name__}",
    )
