"""Provider names -> classes: built-ins, the ``crucible_dagster.datasets`` entry points, dotted
paths (through the one resolver of named code, ``runtime/code_refs.py``).

``dataset.options`` is checked by the provider's own pydantic model, so a bad option names
``dataset.options.<field>`` at validate time, in the Dagster loader and at run start alike.
"""

from __future__ import annotations

import difflib
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from crucible_dagster.common.plugins import entry_point_table
from crucible_dagster.datasets.base import DatasetError, Provider, ProviderOptions
from crucible_dagster.runtime.code_refs import CodeRefError, resolve

if TYPE_CHECKING:
    from crucible_dagster.experiment.ir import DatasetRef

ENTRY_POINT_GROUP = "crucible_dagster.datasets"
_HERE = "crucible_dagster.datasets"
BUILTIN_PROVIDERS = {
    "local": f"{_HERE}.local:LocalProvider",
    "huggingface": f"{_HERE}.huggingface:HuggingFaceProvider",
    "hf": f"{_HERE}.huggingface:HuggingFaceProvider",
    "sklearn": f"{_HERE}.scikit_learn:SklearnProvider",
    "mmlu": f"{_HERE}.benchmarks:MMLU",
    "gsm8k": f"{_HERE}.benchmarks:GSM8K",
    "humaneval": f"{_HERE}.benchmarks:HumanEval",
    "no_robots": f"{_HERE}.benchmarks:NoRobots",
}
#: the default provider, the original ecosystem's library: a name, resolved by ``resolved``
ALIAS = "crucible_datasets"


def provider_names() -> list[str]:
    return sorted({**entry_point_table(ENTRY_POINT_GROUP), **BUILTIN_PROVIDERS, ALIAS: ""})


def provider_class(name: str, where: str = "dataset.provider") -> type[Provider]:
    """The provider class ``name`` names; ``DatasetError`` with the choices when none."""
    table = {**entry_point_table(ENTRY_POINT_GROUP), **BUILTIN_PROVIDERS}
    path = name if ":" in name else table.get(name)
    if path is None:
        close = difflib.get_close_matches(name, list(table), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise DatasetError(
            f"expected a dataset provider ({', '.join(provider_names())}, an entry point in "
            f"{ENTRY_POINT_GROUP}, or 'package.module:Class'), found {name!r}{hint}",
            reason="unknown_provider",
            where=where,
        )
    try:
        cls: type[Provider] = resolve(path, "dataset_provider")
    except CodeRefError as exc:
        raise DatasetError(str(exc), reason=exc.reason, where=where) from None
    if not issubclass(cls.Options, ProviderOptions):
        raise DatasetError(
            f"{path!r} is a class whose Options does not subclass ProviderOptions, not a "
            "dataset provider; it was not called",
            reason="not_a_dataset_provider",
            where=where,
        )
    return cls


def provider_and_options(ref: DatasetRef) -> tuple[Provider, Any]:
    """The provider ``ref`` names (``resolved`` first) and its options, validated by the
    provider's model; an unknown option is named with the closest known one."""
    cls = provider_class(resolved(ref).provider)
    try:
        options = cls.Options.model_validate(ref.options or {})
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        message = first["msg"].removeprefix("Value error, ")
        says_it = " got " in message or "found " in message  # a message that shows the value
        found = f" (found {first['input']!r})" if "input" in first and field and not says_it else ""
        if first["type"] == "extra_forbidden":
            close = difflib.get_close_matches(field, list(cls.Options.model_fields), n=1)
            found = (
                f"; did you mean {close[0]!r}?"
                if close
                else (f"; known: {', '.join(cls.Options.model_fields)}")
            )
        where = f"dataset.options.{field}" if field else "dataset.options"
        raise DatasetError(f"{message}{found}", reason="invalid_options", where=where) from None
    return cls(), options


#: names ``provider: crucible_datasets`` (the default) resolves, as the original library did
BENCHMARK_NAMES = ("mmlu", "gsm8k", "humaneval", "no_robots")


def resolved(ref: DatasetRef) -> DatasetRef:
    """``ref`` with ``provider: crucible_datasets`` replaced by the provider its name names:
    a benchmark (``gsm8k``) or a scikit-learn bundled set (``iris``)."""
    from crucible_dagster.datasets.scikit_learn import SKLEARN_DATASETS

    if ref.provider != "crucible_datasets":
        return ref
    if ref.name in BENCHMARK_NAMES:
        return ref.model_copy(update={"provider": ref.name})
    if ref.name in SKLEARN_DATASETS:
        return ref.model_copy(update={"provider": "sklearn"})
    known = [*BENCHMARK_NAMES, *SKLEARN_DATASETS]
    close = difflib.get_close_matches(ref.name, known, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise DatasetError(
        f"provider crucible_datasets knows {', '.join(known)}, not {ref.name!r}{hint} "
        "(for your own files set provider: local and options.path)",
        reason="unknown_dataset",
        where="dataset.name",
    )
