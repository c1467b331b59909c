"""A backend that is one Python function: ``backend: {id: callable, options: {function: pkg.mod:fn}}``.

The function takes the list of inputs and returns one output per input (or one
``(output, confidence)`` pair per input). Latency is the call's time divided by the batch.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from pydantic import Field, field_validator

from crucible_dagster.backends.base import BackendOptions, Request, Response
from crucible_dagster.experiment.ir import BackendRef
from crucible_dagster.runtime.code_refs import check_ref, resolve


class CallableOptions(BackendOptions):
    function: str = Field(description="'package.module:function' taking a list of inputs.")
    batch_size: int = Field(default=256, ge=1, description="Inputs per call.")

    @field_validator("function")
    @classmethod
    def _function_is_a_function(cls, value: str) -> str:
        """Resolved when the options are checked (validate, the Dagster loader, run start): a
        Python function of the user's, never a builtin, a C function or a class."""
        return check_ref(value, "function")


class CallableBackend:
    Options = CallableOptions

    def __init__(self, ref: BackendRef, options: CallableOptions):
        self.name = ref.id
        self.options = options
        self._function = resolve(options.function, "function")

    def predict(self, requests: Sequence[Request]) -> list[Response]:
        answers: list[Response] = []
        size = self.options.batch_size
        for start in range(0, len(requests), size):
            batch = requests[start : start + size]
            began = time.perf_counter()
            try:
                outputs = list(self._function([r.input for r in batch]))
                if len(outputs) != len(batch):
                    raise ValueError(f"returned {len(outputs)} outputs for {len(batch)} inputs")
                error = None
            except Exception as exc:  # the batch failed: every sample says why
                outputs, error = [None] * len(batch), f"{type(exc).__name__}: {exc}"
            each = (time.perf_counter() - began) * 1000 / len(batch)
            for request, output in zip(batch, outputs, strict=True):
                confidence = None
                if isinstance(output, tuple) and len(output) == 2:
                    output, confidence = output
                answers.append(
                    Response(
                        request.sample_id,
                        _plain(output),
                        confidence,
                        each,
                        error=error,
                        backend=self.name,
                    )
                )
        return answers


def _plain(value: Any) -> Any:
    """numpy scalars as Python values, so outputs store as JSON and Parquet alike."""
    item = getattr(value, "item", None)
    return item() if callable(item) and not isinstance(value, str | bytes) else value
