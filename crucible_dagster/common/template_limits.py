"""What rendering one template may cost: the sandbox that also bounds time and memory.

Why: Jinja2's sandbox keeps a template away from Python's internals, not from spending the
machine. A prompt or rubric is user text rendered for every sample, and each of these is one
short line: ``{{ 9 ** (9 ** 9) }}`` computes for hours, ``{{ 'x' * 10**10 }}`` asks for 10 GB,
``{{ '%999999999d' % 1 }}`` and ``{{ x|center(10**9) }}`` build a gigabyte in one step, and two
nested ``range(100000)`` loops turn 10^10 times without writing anything the output cap could
see. Each is refused as a ``TemplateError`` naming the sample: a result's size is known from its
operands before it is built, and a template's steps (lines of its compiled code) are counted,
not timed, so a template fails the same way on any machine.
"""

from __future__ import annotations

import functools
import math
import re
import string
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

#: the largest text or list a template may build (the rendered message's cap)
MAX_SIZE = 1024 * 1024
#: the largest whole number a template may compute (Python's own cap on printing one)
MAX_DIGITS = 4300
#: lines of a template's compiled code one rendering may run (a loop turn is two or three)
MAX_STEPS = 2_000_000
#: filters whose numeric arguments are widths or counts of what they build, or whose result
#: is known from their arguments (join, replace)
SIZED_FILTERS = (
    "center",
    "indent",
    "truncate",
    "wordwrap",
    "format",
    "batch",
    "slice",
    "join",
    "replace",
)
#: text methods whose integer argument is the width of what they build
WIDTH_METHODS = frozenset({"center", "ljust", "rjust", "zfill", "expandtabs"})
#: the filter and the global Jinja2 draws from Python's unseeded ``random``
UNSEEDED = {"filter": "random", "global": "lipsum"}
UNSEEDED_MESSAGE = (
    "{name!r} is refused: it is drawn from an unseeded random generator, so the prompt would "
    "change between runs (few_shot draws seeded examples)"
)

_PERCENT_SPEC = re.compile(r"%(?:\([^)]*\))?[#0\- +]*(\*|\d+)?(?:\.(\*|\d+))?")
_NUMBER = re.compile(r"\d+")


class TemplateLimit(ValueError):
    """A template that would spend more than a message is worth; the caller names the sample."""


def _digits(value: int) -> int:
    return int(abs(value).bit_length() * 0.30103) + 1


def _size(value: Any) -> int | None:
    """How big ``value`` is, for the operators that build from it (None: not a sized kind)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return _digits(value)
    if isinstance(value, str | bytes | list | tuple):
        return len(value)
    return None


def _refuse(what: str) -> None:
    raise TemplateLimit(f"{what}; templates may build at most {MAX_SIZE} characters")


def check_binop(operator: str, left: Any, right: Any) -> None:
    """Refuse ``left <operator> right`` when its result would be over the caps."""
    if operator == "**":
        ints = all(isinstance(v, int) and not isinstance(v, bool) for v in (left, right))
        if ints and abs(left) > 1 and right > 0 and right * math.log10(abs(left)) > MAX_DIGITS:
            raise TemplateLimit(
                f"{left} ** {right} has over {MAX_DIGITS} digits; templates compute smaller numbers"
            )
    elif operator == "*":
        for sized, count in ((left, right), (right, left)):
            if isinstance(count, int) and not isinstance(count, bool):
                size = _size(sized)
                if (
                    isinstance(sized, int)
                    and size is not None
                    and size + _digits(count) > MAX_DIGITS
                ):
                    raise TemplateLimit(f"a product of over {MAX_DIGITS} digits")
                if not isinstance(sized, int) and size is not None and size * count > MAX_SIZE:
                    _refuse(f"repeating {size} items {count} times")
    elif operator == "+":
        first, second = _size(left), _size(right)
        joined = None if first is None or second is None else first + second
        if joined is not None and not isinstance(left, int) and joined > MAX_SIZE:
            _refuse("joining two values of over that many items")
    elif operator == "%" and isinstance(left, str):
        check_percent_format(left, right)


def check_percent_format(pattern: str, args: Any) -> None:
    """``pattern % args``: no width or precision over the cap (``*`` takes it from ``args``)."""
    values = args if isinstance(args, tuple) else (args,)
    for match in _PERCENT_SPEC.finditer(pattern):
        for number in match.groups():
            if number == "*":
                numbers = [v for v in values if isinstance(v, int) and not isinstance(v, bool)]
                if any(abs(v) > MAX_SIZE for v in numbers):
                    _refuse("a width over the cap in a '%' format")
            elif number is not None and int(number) > MAX_SIZE:
                _refuse(f"the width {number} in a '%' format")


def _joined_size(separator: Any, items: Any) -> int | None:
    if not isinstance(separator, str) or not isinstance(items, list | tuple):
        return None
    return len(separator) * max(0, len(items) - 1) + sum(len(str(i)) for i in items)


def _replaced_size(text: Any, old: Any, new: Any) -> int | None:
    if not all(isinstance(v, str) for v in (text, old, new)):
        return None
    found = text.count(old) if old else len(text) + 1
    return len(text) + found * (len(new) - len(old))


def check_call(function: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    """A text method that builds from its arguments (``'a'.ljust(10**9)``, ``s.replace('a', s)``,
    ``sep.join(items)``) refused when its result would be over the cap, before it is built."""
    owner = getattr(function, "__self__", None)
    if not isinstance(owner, str):
        return
    name = getattr(function, "__name__", "")
    if name in WIDTH_METHODS:
        widths = [a for a in (*args, *kwargs.values()) if isinstance(a, int)]
        if any(w > MAX_SIZE for w in widths if not isinstance(w, bool)):
            _refuse(f"a width over the cap given to str.{name}")
    size = None
    if name == "replace" and len(args) >= 2:
        size = _replaced_size(owner, args[0], args[1])
    elif name == "join" and args:
        size = _joined_size(owner, args[0])
    if size is not None and size > MAX_SIZE:
        _refuse(f"str.{name} would build {size} characters")


def check_format_string(pattern: str) -> None:
    """``pattern.format(...)``: no width or precision over the cap, none taken from a value."""
    try:
        fields = list(string.Formatter().parse(pattern))
    except ValueError:
        return  # the formatting itself says what is wrong
    for _, _, spec, _ in fields:
        if not spec:
            continue
        if "{" in spec:
            raise TemplateLimit("a width taken from a value ('{:{w}}') is refused in templates")
        if any(int(n) > MAX_SIZE for n in _NUMBER.findall(spec)):
            _refuse(f"the format {spec!r}")


def _is_context(value: Any) -> bool:
    """Jinja2 passes its eval context or environment first to some filters."""
    return type(value).__name__ in {"EvalContext", "Environment", "BoundedSandbox", "Context"}


def _is_list(value: Any) -> bool:
    return isinstance(value, list | tuple)


def sized_filter(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    """``function`` (a width-taking filter) refusing a width or count over the cap."""

    @functools.wraps(function)  # keeps jinja_pass_arg, so Jinja2 passes what it passed
    def checked(*args: Any, **kwargs: Any) -> Any:
        numbers = [a for a in (*args[1:], *kwargs.values()) if isinstance(a, int)]
        if any(abs(n) > MAX_SIZE for n in numbers if not isinstance(n, bool)):
            _refuse(f"a width or count over the cap given to the filter {name!r}")
        if name == "format":
            for value in args[:2]:
                if isinstance(value, str):
                    check_percent_format(value, tuple(args[2:]))
        texts = [a for a in args if not _is_context(a)]
        size = None
        if name == "join" and texts:
            separator = texts[1] if len(texts) > 1 else kwargs.get("d", "")
            size = _joined_size(separator, list(texts[0]) if _is_list(texts[0]) else None)
        elif name == "replace" and len(texts) >= 3:
            size = _replaced_size(str(texts[0]), texts[1], texts[2])
        if size is not None and size > MAX_SIZE:
            _refuse(f"the filter {name!r} would build {size} characters")
        return function(*args, **kwargs)

    return checked


def unseeded(name: str) -> Callable[..., Any]:
    """What ``random`` and ``lipsum`` become: Jinja2 draws them from Python's unseeded
    ``random``, so a prompt using them changed from run to run (and missed the answer cache)."""

    def refused(*args: Any, **kwargs: Any) -> Any:
        raise TemplateLimit(UNSEEDED_MESSAGE.format(name=name))

    return refused


def check_stored(value: Any) -> None:
    """A value kept across loop turns (a ``namespace`` attribute) stays within the cap, so a
    loop that doubles it stops at the cap instead of the memory."""
    size = _size(value)
    if size is not None and not isinstance(value, int) and size > MAX_SIZE:
        _refuse(f"storing {size} items in a namespace")
    if isinstance(value, int) and not isinstance(value, bool) and _digits(value) > MAX_DIGITS:
        raise TemplateLimit(f"storing a number of over {MAX_DIGITS} digits in a namespace")


@contextmanager
def counted_steps() -> Iterator[None]:
    """Count the lines of template code run here; TemplateLimit past MAX_STEPS. Only frames of
    compiled templates are traced (the rest of Python runs untraced), and the tracer that was
    set before (a debugger's, coverage's) is put back."""
    steps = 0

    def in_template(frame: Any, event: str, arg: Any) -> Any:
        nonlocal steps
        if event == "line":
            steps += 1
            if steps == MAX_STEPS + 1:
                raise TemplateLimit(
                    f"the template ran over {MAX_STEPS} steps (loops too long for one message)"
                )
        return in_template

    def on_call(frame: Any, event: str, arg: Any) -> Any:
        return in_template if frame.f_code.co_filename == "<template>" else None

    previous = sys.gettrace()
    sys.settrace(on_call)
    try:
        yield
    finally:
        sys.settrace(previous)
