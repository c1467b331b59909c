"""Backend names -> classes: built-ins, the ``crucible_dagster.backends`` entry points, dotted paths.

The IR's ``backend: {id: ..., options: {...}, fallback: {...}}`` is built here, its options
checked by the backend's own pydantic model: a bad option names ``backend.options.<field>``.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from crucible_dagster.backends.base import Backend, BackendError, BackendOptions, FallbackBackend
from crucible_dagster.backends.http import credentials_problem
from crucible_dagster.common.plugins import entry_point_table
from crucible_dagster.experiment.ir import BackendRef
from crucible_dagster.runtime.code_refs import resolve_plugin
from crucible_dagster.runtime.registry import is_dotted_path

ENTRY_POINT_GROUP = "crucible_dagster.backends"
BUILTIN_BACKENDS = {
    "noop": "crucible_dagster.backends.base:NoopBackend",
    "sklearn": "crucible_dagster.backends.scikit_learn:SklearnBackend",
    "callable": "crucible_dagster.backends.python_callable:CallableBackend",
    "openai_compatible": "crucible_dagster.backends.openai_compatible:OpenAICompatibleBackend",
}


def backend_names() -> list[str]:
    return sorted({**entry_point_table(ENTRY_POINT_GROUP), **BUILTIN_BACKENDS})


def backend_class(backend_id: str, where: str = "backend.id") -> Any:
    """The class a backend id names; ``BackendError`` with the choices when it names none."""
    table = {**entry_point_table(ENTRY_POINT_GROUP), **BUILTIN_BACKENDS}
    path = backend_id if is_dotted_path(backend_id) else table.get(backend_id)
    if path is None:
        raise BackendError(
            f"{where}: expected a backend ({', '.join(backend_names())}, an entry point in "
            f"{ENTRY_POINT_GROUP}, or 'package.module:Class'), found {backend_id!r}"
        )
    return resolve_plugin(path, "backend", BackendOptions, BackendError, where)


def check_backend(ref: BackendRef, where: str = "backend") -> BackendOptions:
    """The backend's class resolves and its options validate: ``crucible validate`` calls this."""
    cls = backend_class(ref.id, f"{where}.id")
    try:
        options: BackendOptions = cls.Options.model_validate(ref.options or {})
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        message = first["msg"].removeprefix("Value error, ")
        raise BackendError(
            f"{where}.options.{field}: {message} (found {first.get('input')!r})"
        ) from None
    found = _endpoint_problem(cls, ref, options)
    if found is not None:
        raise BackendError(f"{where}.{found[0]}: {found[1]}")
    if ref.fallback is not None:
        check_backend(ref.fallback, f"{where}.fallback")
    return options


def _endpoint_problem(cls: Any, ref: BackendRef, options: BackendOptions) -> tuple[str, str] | None:
    """(field, problem) of a URL the backend cannot use: a password in any backend's
    endpoint_url (the run's records copy it); what the class's ``check_endpoint`` refuses."""
    if ref.endpoint_url is not None:
        problem = credentials_problem(ref.endpoint_url)
        if problem is not None:
            return "endpoint_url", problem
    checker = getattr(cls, "check_endpoint", None)
    return checker(ref, options) if callable(checker) else None


def build_backend(ref: BackendRef, where: str = "backend") -> Backend:
    """The backend the IR describes, wrapped with its fallback when it has one."""
    options = check_backend(ref, where)
    backend: Backend = backend_class(ref.id)(ref, options)
    if ref.fallback is not None:
        backend = FallbackBackend(backend, build_backend(ref.fallback, f"{where}.fallback"))
    return backend
