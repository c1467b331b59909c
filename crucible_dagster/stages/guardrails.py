"""Safety guardrails over ``assigns["examples"]`` through a pluggable adapter.

Adapter protocol: ``scan(examples, options) -> list[violation dict]``; raise to fail.
Built-ins: ``noop`` (finds nothing) and ``pii`` (personal data and secrets). Violations
say where (example index, field path) and what kind, never the offending text.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

from pydantic import Field

from crucible_dagster.runtime.context import Context
from crucible_dagster.runtime.registry import import_object
from crucible_dagster.runtime.stage import Stage, StageError, StageOptions


@runtime_checkable
class GuardrailAdapter(Protocol):
    def scan(self, examples: Sequence[Any], options: Mapping[str, Any]) -> list[dict[str, Any]]: ...


class NoopAdapter:
    def scan(self, examples: Sequence[Any], options: Mapping[str, Any]) -> list[dict[str, Any]]:
        return []


def luhn_valid(digits: str) -> bool:
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2 == 1:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


_EMAIL = re.compile(
    r"(?<![\w.+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b"
)
_CARD = re.compile(r"(?<!\d)(?:\d[ -]?){12,18}\d(?!\d)")
_PHONE = re.compile(
    r"(?<![\w+])(?:\+\d{1,3}[ .-]?)?(?:\(\d{1,4}\)[ .-]?)?\d{2,4}(?:[ .-]?\d{2,4}){2,4}(?!\d)"
)
_API_KEYS = re.compile(
    r"\b(?:sk-(?:proj-|live-|test-)?[A-Za-z0-9_-]{20,}"
    r"|sk_(?:live|test)_[A-Za-z0-9]{16,}"
    r"|AKIA[0-9A-Z]{16}"
    r"|gh[pousr]_[A-Za-z0-9]{36,}"
    r"|xox[abposr]-[A-Za-z0-9-]{10,}"
    r"|AIza[0-9A-Za-z_-]{35}"
    r"|glpat-[A-Za-z0-9_-]{20,})"
)
_ASSIGNED_SECRET = re.compile(
    r"(?i)\b(?:api[_-]?key|secret|token|password|passwd)\b\s*[:=]\s*['\"]?([A-Za-z0-9_\-./+=]{16,})"
)


def _strings(value: Any, path: str) -> Iterator[tuple[str, str]]:
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from _strings(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            yield from _strings(item, f"{path}[{index}]")


def find_sensitive(text: str) -> list[tuple[str, int, int]]:
    """(kind, start, end) of every finding; overlapping weaker findings are dropped."""
    found: list[tuple[str, int, int]] = []
    taken: list[tuple[int, int]] = []

    def add(kind: str, start: int, end: int) -> None:
        if any(start < e and s < end for s, e in taken):
            return
        taken.append((start, end))
        found.append((kind, start, end))

    for match in _API_KEYS.finditer(text):
        add("api_key", match.start(), match.end())
    for match in _ASSIGNED_SECRET.finditer(text):
        add("api_key", match.start(1), match.end(1))
    for match in _EMAIL.finditer(text):
        add("email", match.start(), match.end())
    for match in _CARD.finditer(text):
        digits = re.sub(r"\D", "", match.group())
        if 13 <= len(digits) <= 19 and luhn_valid(digits):
            add("credit_card", match.start(), match.end())
    for match in _PHONE.finditer(text):
        digits = re.sub(r"\D", "", match.group())
        if 9 <= len(digits) <= 15:
            add("phone", match.start(), match.end())
    return sorted(found, key=lambda f: f[1])


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
    obj = import_object(ref, "guardrail adapter")
    # The kind is checked before anything named in the file is instantiated or called.
    if not isinstance(obj, type) or not callable(getattr(obj, "scan", None)):
        kind = "class without a scan method" if isinstance(obj, type) else type(obj).__name__
        raise StageError(
            "invalid_adapter",
            ref,
            f"{ref!r} is a {kind}; expected a class with a scan(examples, options) method; "
            "it was not called",
        )
    adapter: GuardrailAdapter = obj()
    return adapter


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


class GuardrailsStage(Stage):
    name = "guardrails"
    description = "Applies safety guardrail checks to examples via configurable adapter"
    Options = GuardrailsOptions

    def run(self, ctx: Context, options: GuardrailsOptions) -> Context:
        examples = ctx.assigns.get("examples")
        if not isinstance(examples, list):
            return ctx
        violations = list(load_adapter(options.adapter).scan(examples, options.adapter_options))
        if violations and options.fail_on_violation:
            raise StageError(
                "guardrail_violation", violations, f"{len(violations)} guardrail violation(s)"
            )
        summary = {"total": len(examples), "violations": len(violations)}
        return ctx.put_metric("guardrails", summary).assign("guardrail_violations", violations)
