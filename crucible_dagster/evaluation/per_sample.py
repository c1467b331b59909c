"""The per-sample table the predict, ensemble, score and fairness stages share.

One row per (variant, sample): ``variant, sample_id, seed, prediction, reference, confidence,
latency_ms, prompt_tokens, completion_tokens, cost, cached, error, backend, extra_requests``,
``messages`` (the chat messages sent, as JSON text) when a prompt rendered them, and ``score``
once scored. It lives in ``assigns["predictions"]`` and, written by each stage
that changes it, as ``predictions.parquet`` in the run directory.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
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
    variant: str,
    responses: Iterable[Response],
    references: dict[str, Any],
    seed: int | None,
    messages: dict[str, str] | None = None,
) -> list[dict[str, Any]]:
    """The table's rows for one variant; ``messages``: each sample's messages as JSON text."""
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
            **({"messages": messages.get(r.sample_id)} if messages is not None else {}),
        }
        for r in responses
    ]


def as_table(rows: list[dict[str, Any]]) -> pd.DataFrame:
    import pandas as pd

    # a table the score stage already scored keeps its score columns, and one whose prompts were
    # recorded its messages
    scores = [c for c in rows[0] if c == "score" or c.startswith("score_")] if rows else []
    messages = ["messages"] if any("messages" in row for row in rows) else []
    frame = pd.DataFrame(rows, columns=[*COLUMNS, *messages, *scores])
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
    p50, p95, p99, p999 = np.quantile(values, [0.5, 0.95, 0.99, 0.999])
    return {
        "p50_ms": float(p50),
        "p95_ms": float(p95),
        "p99_ms": float(p99),
        "p999_ms": float(p999),
        "max_ms": float(values.max()),
    }


class SampleSource(StageOptions):
    """Where a stage finds its samples and their references."""

    inputs: str | None = Field(
        default=None,
        description="assigns key of the samples; default: 'examples' when a prompt is set, else "
        "'features' when there, else 'examples'.",
    )
    input_field: str = Field(
        default="input", description="For examples: the field sent when no prompt is set."
    )
    reference: str | None = Field(
        default="target",
        description="assigns key of the references (an array aligned with feature rows), or an "
        "example's field holding its reference; left unset, examples without 'target' use "
        "their 'reference' field.",
    )


def checked_backends(cls: Any, value: dict[str, BackendRef] | None) -> dict[str, BackendRef] | None:
    """A validator: every named backend resolves and its options validate."""
    for name, ref in (value or {}).items():
        try:
            check_backend(ref, where=name)
        except BackendError as exc:
            raise ValueError(str(exc)) from None
    return value


@dataclass
class Samples:
    """A stage's samples: one request each (its input: a feature row, or the input field), the
    references by sample id, the feature table (for backends that fit), and for examples each
    one's fields (what a prompt template is filled from)."""

    requests: list[Request]
    references: dict[str, Any]
    frame: Any = None
    examples: list[tuple[str, dict[str, Any]]] | None = None


def inputs_key(ctx: Context, options: SampleSource, prompted: bool = False) -> str:
    """The assigns key the samples are read from: ``inputs`` when set; else ``examples`` for a
    prompt (it renders examples' fields), else ``features`` when there (feature rows for a
    model that fits), else ``examples`` (what a dataset of examples loads as)."""
    if options.inputs is not None:
        return options.inputs
    if prompted or "features" not in ctx.assigns:
        return "examples"
    return "features"


def example_rows(data: Any, key: str) -> list[tuple[str, dict[str, Any]]]:
    """(sample id, fields) of each example: a DataFrame's rows (ids: its index) or a list of
    dicts (ids: an ``id`` field, else the position); two samples with one id are refused."""
    import pandas as pd

    if isinstance(data, pd.DataFrame):
        pairs = [
            (str(i), {str(k): v for k, v in row.items()})
            for i, row in zip(data.index, data.to_dict("records"), strict=True)
        ]
    elif isinstance(data, list) and all(isinstance(e, dict) for e in data):
        pairs = [(str(e.get("id", index)), dict(e)) for index, e in enumerate(data)]
    else:
        raise StageError(
            "missing_samples",
            key,
            f"predict needs assigns['{key}']: a DataFrame of examples or feature rows, or a list "
            f"of examples (dicts), got {type(data).__name__}",
        )
    seen: set[str] = set()
    for sample_id, _ in pairs:
        if sample_id in seen:
            raise StageError(
                "duplicate_sample",
                sample_id,
                f"assigns['{key}']: sample id {sample_id!r} twice (the per-sample comparison "
                "pairs samples by id)",
            )
        seen.add(sample_id)
    return pairs


def _reference_field(options: SampleSource, fields: set[str]) -> str | None:
    name = options.reference
    if name is not None and name not in fields and "reference" not in options.model_fields_set:
        return "reference" if "reference" in fields else name
    return name


def _feature_rows(ctx: Context, data: pd.DataFrame, options: SampleSource) -> Samples:
    import numpy as np

    ids = [str(i) for i in data.index]
    requests = [Request(i, row) for i, row in zip(ids, data.to_dict("records"), strict=True)]
    reference = ctx.assigns.get(options.reference) if options.reference else None
    refs = {} if reference is None else dict(zip(ids, np.asarray(reference).tolist(), strict=True))
    return Samples(requests, refs, data)


def _examples(data: Any, key: str, options: SampleSource, prompted: bool) -> Samples:
    pairs = example_rows(data, key)
    fields = set().union(*(f for _, f in pairs)) if pairs else set()
    reference = _reference_field(options, fields)
    requests, refs = [], {}
    for index, (sample_id, example) in enumerate(pairs):
        if not prompted and options.input_field not in example:
            raise StageError(
                "missing_field",
                index,
                f"assigns['{key}'] sample {sample_id!r} has no field {options.input_field!r} "
                "(set input_field, or a prompt)",
            )
        requests.append(Request(sample_id, None if prompted else example[options.input_field]))
        if reference is not None and reference in example:
            refs[sample_id] = example[reference]
    return Samples(requests, refs, None, pairs)


def samples_of(ctx: Context, options: SampleSource, prompted: bool = False) -> Samples:
    """The samples at ``inputs_key``: a DataFrame is feature rows unless a prompt is set or it
    has the ``input_field`` column (then it is examples, as a list of dicts always is)."""
    import pandas as pd

    key = inputs_key(ctx, options, prompted)
    data = ctx.assigns.get(key)
    if isinstance(data, pd.DataFrame) and not prompted and options.input_field not in data:
        return _feature_rows(ctx, data, options)
    return _examples(data, key, options, prompted)
