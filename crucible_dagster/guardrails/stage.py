"""Safety guardrails over ``assigns["examples"]`` through a pluggable adapter.

Adapter protocol: ``scan(examples, options) -> list[violation dict]``; raise to fail.
Built-ins: ``noop`` (finds nothing) and ``pii`` (personal data and secrets). Violations
say where (example index, field path) and what kind, never the offending text.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import replace
from typing import Any, Protocol, runtime_checkable

from pydantic import Field, field_validator

from crucible_dagster.common.pii import each_string, find_sensitive, redact, redact_record
from crucible_dagster.common.pii import luhn_valid as luhn_valid  # re-exported: the old import
from crucible_dagster.common.tables import is_dataframe, is_series
from crucible_dagster.runtime.code_refs import CodeRefError, check_ref, resolve
from crucible_dagster.runtime.context import Context
from crucible_dagster.runtime.stage import Stage, StageError, StageOptions
from crucible_dagster.runtime.trace import TraceChain
from crucible_dagster.telemetry import record


@runtime_checkable
class GuardrailAdapter(Protocol):
    def scan(self, examples: Sequence[Any], options: Mapping[str, Any]) -> list[dict[str, Any]]: ...


class NoopAdapter:
    def scan(self, examples: Sequence[Any], options: Mapping[str, Any]) -> list[dict[str, Any]]:
        return []


def _strings(value: Any, path: str) -> Iterator[tuple[str, str]]:
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from _strings(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            yield from _strings(item, f"{path}[{index}]")


class PiiSecretsAdapter:
    """Finds email addresses, phone numbers, Luhn-valid card numbers and API-key-like tokens."""

    def scan(self, examples: Sequence[Any], options: Mapping[str, Any]) -> list[dict[str, Any]]:
        kinds = set(options.get("kinds") or ("email", "phone", "credit_card", "api_key"))
        violations = []
        for index, example in enumerate(examples):
            for field, text in _strings(example, ""):
                for kind, start, end in find_sensitive(text):
                    if kind in kinds:
                        violations.append(
                            {
                                "index": index,
                                "field": field or "(value)",
                                "kind": kind,
                                "start": start,
                                "end": end,
                            }
                        )
        return violations


BUILTIN_ADAPTERS: dict[str, type] = {"noop": NoopAdapter, "pii": PiiSecretsAdapter}


def load_adapter(ref: str) -> GuardrailAdapter:
    if ref in BUILTIN_ADAPTERS:
        return BUILTIN_ADAPTERS[ref]()
    if ":" not in ref:
        raise StageError(
            "unknown_adapter",
            ref,
            f"unknown guardrail adapter {ref!r}; built-ins: {', '.join(BUILTIN_ADAPTERS)}, or a dotted path",
        )
    try:
        # the one resolver of named code: a class with scan, checked before it is instantiated
        obj = resolve(ref, "adapter")
    except CodeRefError as exc:
        raise StageError("invalid_adapter", ref, str(exc)) from None
    adapter: GuardrailAdapter = obj()
    return adapter


class GuardrailDetection(StageError):
    """The guardrails stop the run; ``context`` is what the run records (PII redacted)."""

    def __init__(self, context: Context, detections: list[dict[str, Any]], message: str):
        super().__init__("guardrail_detection", detections, message)
        self.context = context


class GuardrailsOptions(StageOptions):
    adapter: str = Field(
        default="noop", description="'noop', 'pii', or a dotted path to an adapter class."
    )
    adapter_options: dict[str, Any] = Field(
        default_factory=dict, description="Passed to the adapter's scan()."
    )
    fail_on_violation: bool = Field(
        default=False, description="Fail the stage when the adapter reports violations."
    )

    @field_validator("adapter")
    @classmethod
    def _adapter_is_a_class(cls, value: str) -> str:
        """A dotted adapter is resolved when the options are checked (validate, the Dagster
        loader, stage start), before it is instantiated."""
        return check_ref(value, "adapter") if ":" in value else value


class GuardrailsStage(Stage):
    """The adapter's checks over ``assigns["examples"]``; with ``reliability.guardrails`` also
    PII, prompt-injection and jailbreak detection over the examples and the per-sample table's
    predictions, PII redaction, and failing on detection, as its profiles and fields say."""

    name = "guardrails"
    description = "Applies safety guardrail checks to examples via configurable adapter"
    Options = GuardrailsOptions
    uses = ("reliability.guardrails",)

    def run(self, ctx: Context, options: GuardrailsOptions) -> Context:
        config = (
            ctx.experiment.reliability.guardrails
            if ctx.experiment and ctx.experiment.reliability
            else None
        )
        examples = ctx.assigns.get("examples")
        examples = examples if isinstance(examples, list) else None
        table = ctx.assigns.get("predictions")
        table = table if is_dataframe(table) else None
        if examples is None and (config is None or table is None):
            return ctx
        violations = (
            list(load_adapter(options.adapter).scan(examples, options.adapter_options))
            if examples
            else []
        )
        if violations and options.fail_on_violation:
            raise StageError(
                "guardrail_violation", violations, f"{len(violations)} guardrail violation(s)"
            )
        summary: dict[str, Any] = {"total": len(examples or []), "violations": len(violations)}
        if config is None:
            return ctx.put_metric("guardrails", summary).assign("guardrail_violations", violations)
        from crucible_dagster.guardrails.settings import resolve

        settings = resolve(config)
        detections = _detections(examples or [], table, ctx.outputs, settings)
        violations += detections
        by_detector: dict[str, int] = {}
        for found in detections:
            by_detector[found["detector"]] = by_detector.get(found["detector"], 0) + 1
        summary.update(violations=len(violations), by_detector=by_detector, settings=settings)
        for detector, count in sorted(by_detector.items()):  # kinds and counts, never the text
            record("guardrail_findings", finding=detector[:512], count=count)
        out = ctx
        if settings["pii_redaction"]:
            # before failing too: the run records the redacted context, and the per-sample
            # table in the run directory is rewritten redacted
            found = found_values(examples or [], table, ctx.outputs)
            out, redacted = _redacted(ctx, examples, table, found)
            summary["redacted"] = redacted
            # the records name samples by ids that may be the PII itself ("model/ana@x.org")
            violations, detections = (
                redact_record(violations, found),
                redact_record(detections, found),
            )
        out = out.put_metric("guardrails", summary).assign("guardrail_violations", violations)
        if detections and settings["fail_on_detection"]:
            counts = ", ".join(f"{k}: {v}" for k, v in sorted(by_detector.items()))
            raise GuardrailDetection(out, detections, f"guardrails detected {counts}")
        return out


def _texts(
    examples: list[Any], table: Any, outputs: Sequence[Any]
) -> Iterator[tuple[str, Any, str, str]]:
    """(source, where, field, text): every string of the examples and outputs, and every text
    prediction."""
    for source, values in (("examples", examples), ("outputs", outputs)):
        for index, value in enumerate(values):
            for field, text in _strings(value, ""):
                yield source, index, field or "(value)", text
    if table is not None:
        for row in table[["variant", "sample_id", "prediction"]].itertuples(index=False):
            if isinstance(row.prediction, str):
                yield "predictions", f"{row.variant}/{row.sample_id}", "prediction", row.prediction


def _detections(
    examples: list[Any], table: Any, outputs: Sequence[Any], settings: Mapping[str, bool]
) -> list[dict[str, Any]]:
    from crucible_dagster.guardrails.settings import (
        JAILBREAK,
        PROMPT_INJECTION,
        find_patterns,
    )

    found = []
    for source, where, field, text in _texts(examples, table, outputs):
        hits: list[tuple[str, str, int, int]] = []
        if settings["pii_detection"] or settings["pii_redaction"]:
            hits += [("pii", kind, a, b) for kind, a, b in find_sensitive(text)]
        if settings["prompt_injection_detection"]:
            hits += [
                ("prompt_injection", kind, a, b)
                for kind, a, b in find_patterns(text, PROMPT_INJECTION)
            ]
        if settings["jailbreak_detection"]:
            hits += [("jailbreak", kind, a, b) for kind, a, b in find_patterns(text, JAILBREAK)]
        for detector, kind, start, end in hits:
            entry = {
                "source": source,
                "field": field,
                "detector": detector,
                "kind": kind,
                "start": start,
                "end": end,
            }
            found.append({**entry, ("sample" if source == "predictions" else "index"): where})
    return found


def _redact_value(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, Mapping):
        return {k: _redact_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_redact_value(v) for v in value)
    return value


def _redacted_experiment(ctx: Context, found: Mapping[str, str]) -> Context:
    """``ctx`` with its experiment's copy of the found values redacted (inline examples in a
    stage's options): the run's stores record the experiment from the Context."""
    experiment = ctx.experiment
    if experiment is None or not found:
        return ctx
    data = experiment.model_dump(mode="json", by_alias=True, exclude_defaults=True)
    clean = redact_record(data, found, findings=False)  # only what the data held: not the owner
    if clean == data:
        return ctx
    return replace(ctx, experiment=type(experiment).model_validate(clean))


def _redacted(
    ctx: Context, examples: list[Any] | None, table: Any, found: Mapping[str, str]
) -> tuple[Context, int]:
    """The examples, text predictions and outputs with PII redacted, so reports show no PII;
    then every value found there is redacted wherever else it is in the Context (other
    assigns, the per-sample table's other columns, metrics, the experiment), so no store
    keeps it."""
    changed = 0
    out = ctx
    if examples is not None:
        clean = [_redact_value(e) for e in examples]
        changed += sum(a != b for a, b in zip(examples, clean, strict=True))
        out = out.assign("examples", clean)
    fixed = None
    if table is not None:
        fixed = table.copy()
        fixed["prediction"] = [redact(p) if isinstance(p, str) else p for p in table["prediction"]]
        changed += int((fixed["prediction"] != table["prediction"]).sum())
    outputs = [_redact_value(o) for o in out.outputs]
    changed += sum(a != b for a, b in zip(out.outputs, outputs, strict=True))
    out = _scrubbed(replace(out, outputs=tuple(outputs)), found, fixed)
    return _redacted_experiment(out, found), changed


def found_values(examples: list[Any], table: Any, outputs: Sequence[Any]) -> dict[str, str]:
    """Every PII value the guardrails find in what they scan, with its kind."""
    values: dict[str, str] = {}
    for _source, _where, _field, text in _texts(examples, table, outputs):
        for kind, start, end in find_sensitive(text):
            values.setdefault(text[start:end], kind)
    return values


def _scrubbed(ctx: Context, found: Mapping[str, str], table: Any) -> Context:
    """``ctx`` with each found value replaced by ``[REDACTED:<kind>]`` in every assign, output,
    metric and trace event (which records options and metrics); the per-sample table (already
    redacted) is saved again once scrubbed."""
    from crucible_dagster.evaluation.per_sample import TABLE_KEY, save_table

    if not found:
        return save_table(ctx, table) if table is not None else ctx
    pattern = re.compile("|".join(re.escape(v) for v in sorted(found, key=len, reverse=True)))

    def scrub(value: Any) -> Any:
        return _scrub(value, lambda text: pattern.sub(lambda m: f"[REDACTED:{found[m[0]]}]", text))

    assigns = {k: scrub(v) for k, v in ctx.assigns.items() if k != TABLE_KEY or table is None}
    out = replace(
        ctx,
        assigns=assigns,
        outputs=tuple(scrub(o) for o in ctx.outputs),
        metrics=scrub(dict(ctx.metrics)),
        trace=_scrubbed_trace(ctx.trace, scrub),
    )
    return save_table(out, scrub(table)) if table is not None else out


def _scrubbed_trace(trace: TraceChain | None, scrub: Any) -> TraceChain | None:
    if trace is None:
        return None
    events = tuple(
        replace(
            e, decision=scrub(e.decision), reasoning=scrub(e.reasoning), metadata=scrub(e.metadata)
        )
        for e in trace.events
    )
    return replace(trace, events=events, metadata=scrub(trace.metadata))


def _scrub(value: Any, fix: Any) -> Any:
    """``value`` with ``fix`` applied to every string in it, tables' text columns included."""
    return each_string(value, fix, lambda other: _scrub_table(other, fix))


def _scrub_table(value: Any, fix: Any) -> Any:
    """A DataFrame's (or Series') text columns with ``fix`` applied; any other value as is."""
    if is_dataframe(value):
        import pandas as pd

        frame = value.copy()
        for column in frame.columns:
            if frame[column].dtype == object or pd.api.types.is_string_dtype(frame[column]):
                frame[column] = [fix(v) if isinstance(v, str) else v for v in frame[column]]
        return frame
    if is_series(value):
        return _scrub_table(value.to_frame(), fix).iloc[:, 0].rename(value.name)
    return value
