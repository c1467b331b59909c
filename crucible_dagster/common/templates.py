"""Prompt templates: Jinja2 in its immutable sandbox, undefined variables an error, located errors.

Why a sandbox: a template is text from an experiment file (or a sweep grid, or the Launchpad),
and plain Jinja2 lets ``{{ ''.__class__.__mro__[1].__subclasses__() }}`` reach any Python
object. ``ImmutableSandboxedEnvironment`` refuses underscore attributes, the internals of
functions, frames and generators, and methods that change lists or dicts; ``StrictUndefined``
makes a misspelt field an error instead of an empty string sent to a model. Everything that can
be said before a run (syntax, refused attributes, which fields a template reads) is said by
``check_template``, so ``crucible validate`` reports it at the option's line with the line in the
template; what only a sample can tell (a field missing from that sample) is said at run start,
naming the sample, before any request is sent.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import Annotated, Any

from crucible_dagster.common import template_limits as limits
from crucible_dagster.common.field_errors import checked_by

MAX_TEMPLATE_CHARS = 64 * 1024
#: a rendered message longer than this is an error (a loop in a template cannot fill the memory)
MAX_RENDERED_CHARS = limits.MAX_SIZE
#: names a template may read besides the example's fields: the whole example, as a mapping (for
#: field names that are not identifiers: ``{{ example["question text"] }}``)
EXAMPLE_NAME = "example"


class TemplateError(ValueError):
    """A template that cannot be used: the message names the field and the line in the template."""


@dataclass(frozen=True)
class CheckedTemplate:
    """A compiled template and the top-level names it reads (its variables)."""

    source: str
    variables: frozenset[str]
    #: the line in the template where each variable is first read
    lines: tuple[tuple[str, int], ...] = ()

    def line_of(self, name: str) -> int | None:
        return dict(self.lines).get(name)


@cache
def environment() -> Any:
    """The one sandboxed environment every template is compiled in (built on first use, so
    importing this module does not import jinja2)."""
    from jinja2 import StrictUndefined
    from jinja2.sandbox import ImmutableSandboxedEnvironment
    from jinja2.utils import Namespace

    class BoundedNamespace(Namespace):
        def __init__(*args: Any, **kwargs: Any) -> None:
            for value in (*args[2:], *kwargs.values()):
                limits.check_stored(value)
            Namespace.__init__(*args, **kwargs)

        def __setitem__(self, name: str, value: Any) -> None:
            limits.check_stored(value)
            super().__setitem__(name, value)

    class BoundedSandbox(ImmutableSandboxedEnvironment):
        """The immutable sandbox, with the operators that build large values checked first."""

        intercepted_binops = frozenset({"*", "**", "%", "+"})

        def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
            limits.check_binop(operator, left, right)
            return super().call_binop(context, operator, left, right)

        def call(self, context: Any, function: Any, /, *args: Any, **kwargs: Any) -> Any:
            limits.check_call(function, args, kwargs)
            return super().call(context, function, *args, **kwargs)

        def wrap_str_format(self, value: Any) -> Any:
            if isinstance(getattr(value, "__self__", None), str):
                limits.check_format_string(value.__self__)
            return super().wrap_str_format(value)

    # one trailing newline (a YAML block's) is dropped, as Jinja2 does by default
    env = BoundedSandbox(undefined=StrictUndefined, autoescape=False)
    for name in limits.SIZED_FILTERS:
        env.filters[name] = limits.sized_filter(name, env.filters[name])
    env.filters["random"] = limits.unseeded("random")
    env.globals.update(lipsum=limits.unseeded("lipsum"), namespace=BoundedNamespace)
    return env


def _unsafe_name(name: str) -> bool:
    from jinja2 import sandbox

    refused = (
        sandbox.UNSAFE_FUNCTION_ATTRIBUTES
        | sandbox.UNSAFE_METHOD_ATTRIBUTES
        | sandbox.UNSAFE_GENERATOR_ATTRIBUTES
        | sandbox.UNSAFE_COROUTINE_ATTRIBUTES
        | sandbox.UNSAFE_ASYNC_GENERATOR_ATTRIBUTES
        | {"mro", "format_map"}
    )
    return name.startswith("_") or name in refused


def _refuse_unseeded(node: Any, name: str, where: str) -> None:
    message = limits.UNSEEDED_MESSAGE.format(name=name)
    raise TemplateError(f"{where}: line {node.lineno} of the template: {message}")


def _refused_access(tree: Any, where: str) -> None:
    """Attribute or item names the sandbox would refuse at render time, refused now with their
    line: ``x.__class__``, ``x['__globals__']``, ``x|attr('__class__')``."""
    from jinja2 import nodes

    for call in tree.find_all(nodes.Call):
        if isinstance(call.node, nodes.Name) and call.node.name == limits.UNSEEDED["global"]:
            _refuse_unseeded(call, "lipsum", where)
    for node in tree.find_all((nodes.Getattr, nodes.Getitem, nodes.Filter)):
        names: list[Any] = []
        if isinstance(node, nodes.Getattr):
            names = [node.attr]
        elif isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const):
            names = [node.arg.value]
        elif isinstance(node, nodes.Filter) and node.name == "attr":
            names = [a.value for a in node.args if isinstance(a, nodes.Const)]
        elif isinstance(node, nodes.Filter) and node.name == limits.UNSEEDED["filter"]:
            _refuse_unseeded(node, "random", where)
        for name in names:
            if isinstance(name, str) and _unsafe_name(name):
                raise TemplateError(
                    f"{where}: line {node.lineno} of the template: {name!r} is refused (templates "
                    "run sandboxed: no attributes starting with '_' nor the internals of "
                    "functions, methods and frames)"
                )


def check_template(source: Any, where: str) -> CheckedTemplate:
    """The template parsed and checked: a TemplateError naming ``where`` and the template's line
    for a syntax error or a refused attribute; the names it reads, for the fields check."""
    if not isinstance(source, str):
        raise TemplateError(f"{where}: expected a template (text), found {type(source).__name__}")
    if len(source) > MAX_TEMPLATE_CHARS:
        raise TemplateError(
            f"{where}: expected a template of at most {MAX_TEMPLATE_CHARS} characters, found "
            f"{len(source)}"
        )
    try:
        return _checked(source, where)
    except RecursionError:
        raise TemplateError(f"{where}: the template is nested too deeply to read") from None


def _checked(source: str, where: str) -> CheckedTemplate:
    from jinja2 import TemplateSyntaxError, meta, nodes

    env = environment()
    try:
        tree = env.parse(source)
    except TemplateSyntaxError as exc:
        raise TemplateError(
            f"{where}: template syntax error at line {exc.lineno} of the template: {exc.message}"
        ) from None
    _refused_access(tree, where)
    try:  # compiled now: Python refuses more than 20 nested blocks only when it compiles them
        _compiled(source)
    except SyntaxError as exc:  # IndentationError too: too many levels of indentation
        raise TemplateError(
            f"{where}: the template nests its blocks too deeply to run ({exc.msg}; Python allows "
            "about 20 nested for/if blocks)"
        ) from None
    variables = frozenset(meta.find_undeclared_variables(tree)) - set(env.globals)
    lines: dict[str, int] = {}
    for node in tree.find_all(nodes.Name):
        if node.name in variables:
            lines[node.name] = min(lines.get(node.name, node.lineno), node.lineno)
    return CheckedTemplate(source, variables, tuple(sorted(lines.items())))


def missing_fields(template: CheckedTemplate, fields: set[str] | frozenset[str]) -> list[str]:
    """The names ``template`` reads that neither the fields nor ``example`` provide."""
    return sorted(template.variables - set(fields) - {EXAMPLE_NAME})


@cache
def _repeats(source: str) -> bool:
    """Whether the template can repeat itself (a for loop, a macro that may call itself): only
    such templates have their steps counted (the tracer makes a rendering about 3x slower)."""
    from jinja2 import nodes

    return environment().parse(source).find((nodes.For, nodes.Macro)) is not None


@cache
def _compiled(source: str) -> Any:
    """Compiled once per template text (a run renders one template for every sample)."""
    return environment().from_string(source)


def render(source: str, fields: Mapping[str, Any], where: str) -> str:
    """``source`` filled from ``fields`` (and ``example``, the fields as one mapping): a
    TemplateError naming ``where`` for an undefined name, a refused access or an output over
    the cap; never a partial message."""
    from jinja2 import TemplateError as JinjaError
    from jinja2 import UndefinedError
    from jinja2.sandbox import SecurityError

    values = {EXAMPLE_NAME: dict(fields), **{str(k): v for k, v in fields.items()}}
    parts: list[str] = []
    size = 0
    try:
        with limits.counted_steps() if _repeats(source) else contextlib.nullcontext():
            for chunk in _compiled(source).generate(values):
                size += len(chunk)
                if size > MAX_RENDERED_CHARS:
                    raise TemplateError(
                        f"{where}: the rendered message is over {MAX_RENDERED_CHARS} characters"
                    )
                parts.append(chunk)
    except limits.TemplateLimit as exc:
        raise TemplateError(f"{where}: {exc}") from None
    except UndefinedError as exc:
        shown = ", ".join(sorted(str(k) for k in fields)[:20]) or "none"
        raise TemplateError(f"{where}: {exc.message} (the fields: {shown})") from None
    except SecurityError as exc:
        raise TemplateError(f"{where}: refused by the sandbox: {exc}") from None
    except JinjaError as exc:
        raise TemplateError(f"{where}: {type(exc).__name__}: {exc}") from None
    except TemplateError:
        raise
    except (
        TypeError,
        ValueError,
        ArithmeticError,
        LookupError,
        RecursionError,
        SyntaxError,
    ) as exc:
        raise TemplateError(f"{where}: {type(exc).__name__}: {exc}") from None
    except MemoryError:
        raise TemplateError(f"{where}: rendering ran out of memory") from None
    return "".join(parts)


#: a field that holds a template: parsed in the sandbox when the options are validated, its
#: error (a syntax error's line, a refused attribute) at the field
TemplateText = Annotated[str, checked_by(check_template, TemplateError, "{field}: ")]
