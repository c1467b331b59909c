"""One resolver for every dotted path a file names, and the rule of each kind of code, in one place.

An experiment file can name code: a stage, a backend, an sklearn ``estimator`` or ``factory``,
a callable backend's ``function``, a data-checks ``checker``, a guardrail ``adapter``, a score
stage's ``scorer``, a dataset provider. Each is resolved here and checked for its kind before
anything is instantiated or called, by ``crucible validate``, the Dagster loader and at run
start alike (they all call ``resolve``).

- A name from the standard library or ``builtins`` (``os:system``, ``builtins:eval``,
  ``subprocess:run``) is refused before its module is even imported, and an object that comes
  from the standard library through a user's module (``mine:run`` after
  ``from subprocess import run``) is refused after.
- Importing a module runs it: an exit, an exception or ``KeyboardInterrupt`` while importing is
  that field's problem, and what the module prints goes to stderr, never into a command's output.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import inspect
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel

DOTTED_PATH = re.compile(
    r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$"
)

CodeKind = Literal[
    "stage",
    "backend",
    "estimator",
    "factory",
    "function",
    "checker",
    "adapter",
    "dataset_provider",
    "scorer",
]


class CodeRefError(LookupError):
    """A dotted path that does not lead to code of the kind expected; the message says why."""

    def __init__(self, reason: str, ref: str, message: str):
        self.reason = reason
        self.ref = ref
        super().__init__(message)


#: installed with every environment, holding helpers that run commands
#: (``setuptools._distutils.spawn:spawn`` takes a list, as a callable backend's function does)
PACKAGING_TOOLS = frozenset({"pip", "setuptools", "_distutils_hack", "pkg_resources", "wheel"})


def is_standard_library(module_name: str) -> bool:
    """The module's top-level package ships with Python (``builtins`` included)."""
    return module_name.partition(".")[0] in sys.stdlib_module_names


def refused_origin(module_name: str) -> str | None:
    """Where no user's code lives: "the standard library" or "the packaging tools", else None."""
    if is_standard_library(module_name):
        return "the standard library"
    return "the packaging tools" if module_name.partition(".")[0] in PACKAGING_TOOLS else None


def _import_module(path: str, module_name: str) -> Any:
    """Import a user's module; whatever the import does is contained and reported for ``path``."""
    try:
        spec = importlib.util.find_spec(module_name)
    except (ImportError, ValueError) as exc:
        raise CodeRefError(
            "module_not_found", path, f"cannot find module {module_name!r} for {path!r}: {exc}"
        ) from None
    if spec is None:
        raise CodeRefError(
            "module_not_found", path, f"cannot find module {module_name!r} for {path!r}"
        )
    try:
        # A module that prints while importing must not corrupt a command's output on stdout.
        with contextlib.redirect_stdout(sys.stderr):
            return importlib.import_module(module_name)
    except BaseException as exc:
        # The import failed, called sys.exit() or raised KeyboardInterrupt: a problem of this
        # field, never a success and never an exit of the caller.
        sys.modules.pop(module_name, None)
        raise CodeRefError(
            "import_failed",
            path,
            f"importing {module_name!r} for {path!r} failed: {type(exc).__name__}: {exc}",
        ) from None


def _refuse_standard_library(path: str, module_name: str, expected: str) -> None:
    """Refuse a module of the standard library (or the packaging tools) before it is imported:
    no user's code lives there."""
    where = refused_origin(module_name)
    if where is not None:
        top = module_name.partition(".")[0]
        raise CodeRefError(
            "standard_library",
            path,
            f"{path!r} names {where} ({top!r}), not {expected}; it was not imported or called",
        )


def import_object(path: str, what: str = "object") -> Any:
    """Import ``package.module:Attr``, running nothing but the module's own import; a standard
    library module is refused before it is imported."""
    if not DOTTED_PATH.match(path):
        raise CodeRefError(
            "invalid_path", path, f"{path!r} is not a dotted path of the form 'package.module:Name'"
        )
    module_name, attr_path = path.split(":", 1)
    _refuse_standard_library(path, module_name, f"a {what} of your own")
    obj: Any = _import_module(path, module_name)
    for part in attr_path.split("."):
        if part.startswith("__"):
            raise CodeRefError("invalid_path", path, f"{path!r} names a private attribute")
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise CodeRefError(
                "attribute_not_found", path, f"module {module_name!r} has no {what} {attr_path!r}"
            ) from None
    return obj


def describe(obj: Any) -> str:
    """What an object is, in the words a problem line uses ("a class", "a C function" ...)."""
    if isinstance(obj, type):
        return "a class"
    if inspect.ismodule(obj):
        return "a module"
    if inspect.isfunction(obj):
        return "a function"
    if inspect.isbuiltin(obj) or inspect.ismethoddescriptor(obj):
        return "a built-in (C) function"
    return f"a {type(obj).__name__} object"


def _class_with(*methods: str) -> Callable[[Any], str | None]:
    def check(obj: Any) -> str | None:
        if not isinstance(obj, type):
            return describe(obj)
        missing = [m for m in methods if not callable(getattr(obj, m, None))]
        return f"a class without a {' or '.join(missing)} method" if missing else None

    return check


def _function_of(arguments: int) -> Callable[[Any], str | None]:
    """A Python function (not a builtin, C function or class) that takes ``arguments`` positionally."""

    def check(obj: Any) -> str | None:
        if not inspect.isfunction(obj):
            return describe(obj)
        signature = inspect.signature(obj)
        try:
            signature.bind(*range(arguments))
        except TypeError:
            positional = [
                p
                for p in signature.parameters.values()
                if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
            ]
            return f"a function of {len(positional)} argument(s)"
        return None

    return check


def _stage(obj: Any) -> str | None:
    from crucible_dagster.runtime.stage import Stage

    if isinstance(obj, type) and issubclass(obj, Stage):
        return None
    return describe(obj)


def _class_with_options(method: str) -> Callable[[Any], str | None]:
    """A class with ``method`` and a pydantic Options model. Each kind's registry also asks
    that model to subclass its base (BackendOptions, ScorerOptions, ProviderOptions): runtime
    may not import those packages."""

    def check(obj: Any) -> str | None:
        found = _class_with(method)(obj)
        if found:
            return found
        options = getattr(obj, "Options", None)
        if isinstance(options, type) and issubclass(options, BaseModel):
            return None
        return "a class whose Options is not a pydantic model"

    return check


_backend = _class_with_options("predict")
_dataset_provider = _class_with_options("load")
_scorer = _class_with_options("score")


@dataclass(frozen=True)
class KindRule:
    """What a kind of named code must be, and how to tell."""

    noun: str
    expected: str
    check: Callable[[Any], str | None]


KINDS: dict[str, KindRule] = {
    "stage": KindRule("stage class", "a crucible_dagster Stage subclass", _stage),
    "backend": KindRule(
        "backend class",
        "a backend class (predict(requests) and an Options model subclassing BackendOptions)",
        _backend,
    ),
    "estimator": KindRule(
        "estimator class", "an estimator class with fit and predict", _class_with("fit", "predict")
    ),
    "factory": KindRule(
        "factory function",
        "a Python function factory() returning a fitted estimator",
        _function_of(0),
    ),
    "function": KindRule(
        "backend function", "a Python function taking the list of inputs", _function_of(1)
    ),
    "checker": KindRule(
        "checker function", "a function checker(examples, options)", _function_of(2)
    ),
    "adapter": KindRule(
        "guardrail adapter", "a class with a scan(examples, options) method", _class_with("scan")
    ),
    "dataset_provider": KindRule(
        "dataset provider",
        "a dataset provider class (load(ref, options) and an Options model subclassing "
        "ProviderOptions)",
        _dataset_provider,
    ),
    "scorer": KindRule(
        "scorer class",
        "a scorer class (score(prediction, reference) and an Options model subclassing "
        "ScorerOptions)",
        _scorer,
    ),
}


#: (path, kind) -> (the module it was found in, the object) for every path that passed its check:
#: a folder of a thousand experiments names the same few stages fifteen thousand times
_RESOLVED: dict[tuple[str, str], tuple[Any, Any]] = {}


def resolve(path: str, kind: CodeKind) -> Any:
    """The object ``path`` names, checked to be code of ``kind`` before anything calls it.

    A path that passed is remembered while its module stays the one imported (a module
    removed from ``sys.modules`` or reloaded is resolved and checked again)."""
    known = _RESOLVED.get((path, kind))
    if known is not None and _still_names(path, *known):
        return known[1]
    obj = _resolve_and_check(path, kind)
    module = sys.modules.get(path.partition(":")[0])
    if module is not None:
        _RESOLVED[(path, kind)] = (module, obj)
    return obj


def _still_names(path: str, module: Any, obj: Any) -> bool:
    """Whether ``path`` still leads to ``obj`` in the module imported then (no reload, no
    attribute replaced since)."""
    module_name, _, attr_path = path.partition(":")
    if sys.modules.get(module_name) is not module:
        return False
    found = module
    for part in attr_path.split("."):
        found = getattr(found, part, None)
    return found is obj


def _resolve_and_check(path: str, kind: CodeKind) -> Any:
    rule = KINDS[kind]
    if DOTTED_PATH.match(path):
        _refuse_standard_library(path, path.partition(":")[0], rule.expected)
    obj = import_object(path, rule.noun)
    try:
        origin = getattr(obj, "__module__", None)
    except Exception:  # an object whose attributes misbehave is not what any kind expects
        origin = None
    where = refused_origin(origin) if isinstance(origin, str) else None
    if where is not None:
        raise CodeRefError(
            "standard_library",
            path,
            f"{path!r} is {describe(obj)} from {where} ({origin!r}), "
            f"not {rule.expected}; it was not called",
        )
    found = rule.check(obj)
    if found is not None:
        raise CodeRefError(
            f"not_a_{kind}",
            path,
            f"{path!r} is {found}, not {rule.expected}; it was not called",
        )
    return obj


def resolve_plugin(
    path: str, kind: CodeKind, options_base: type, error: type[Exception], where: str
) -> Any:
    """A plugin class (a backend, a scorer) ``path`` names: resolved as ``kind`` and its
    ``Options`` a subclass of ``options_base``, checked before anything is instantiated;
    ``error`` naming ``where`` otherwise."""
    try:
        cls = resolve(path, kind)
    except CodeRefError as exc:
        raise error(f"{where}: {exc}") from None
    if not issubclass(cls.Options, options_base):
        raise error(
            f"{where}: {path!r} is a class whose Options does not subclass "
            f"{options_base.__name__}, not a {kind} class; it was not called"
        )
    return cls


def check_ref(path: str, kind: CodeKind) -> str:
    """A pydantic validator's body: ``path`` unchanged when it resolves to ``kind``, else a
    ValueError with the reason (so the option's field is the one named)."""
    try:
        resolve(path, kind)
    except CodeRefError as exc:
        raise ValueError(str(exc)) from None
    return path


def has_pydantic_options(stage: type) -> bool:
    """A stage's Options is a pydantic model (or it declares a legacy schema instead)."""
    options = getattr(stage, "Options", None)
    legacy = getattr(stage, "legacy_schema", None)
    return legacy is not None or (isinstance(options, type) and issubclass(options, BaseModel))
