"""An outsider's attack on prompt templates (predict.options.prompt, a judge's rubric, few-shot
answers): templates that pass the sandbox's checks but spend the machine. Each must be that
sample's one-line TemplateError, quickly, before any request is sent; found by the attack on the
issue 24 surfaces (before the fix each of these hung the run or asked for gigabytes)."""

from __future__ import annotations

import pytest

from crucible_dagster import Experiment
from crucible_dagster.common.templates import TemplateError, check_template, render
from crucible_dagster.contrib.llm_server import llm_server
from crucible_dagster.runtime.runner import run

HOSTILE = {
    # one operator, hours of CPU or gigabytes of memory
    "a huge power": ("{{ 9 ** (9 ** 9) }}", "over 4300 digits"),
    "a string repeated 10^10 times": ("{{ input * 10 ** 10 }}", "repeating 2 items"),
    "a '%' width of a gigabyte": ('{{ "%999999999d" % 1 }}', "the width 999999999"),
    "a '%*' width from the arguments": ('{{ "%*d" % (999999999, 1) }}', "a width over the cap"),
    "a format() width of a gigabyte": ('{{ "{:>999999999}".format(1) }}', "the format"),
    "a format() width from a value": ('{{ "{:>{w}}".format(1, w=9) }}', "taken from a value"),
    "the format filter": ('{{ "%9999999999d"|format(1) }}', "the width 9999999999"),
    "center": ("{{ input|center(999999999) }}", "filter 'center'"),
    "indent": ("{{ input|indent(999999999, true) }}", "filter 'indent'"),
    "str.ljust": ("{{ 'a'.ljust(999999999)|length }}", "a width over the cap given to str.ljust"),
    "str.zfill": ("{{ input.zfill(999999999) }}", "str.zfill"),
    "str.replace": (
        "{% set s = 'a' * 1000000 %}{{ s.replace('a', s)|length }}",
        "str.replace would build 1000000000000 characters",
    ),
    "the replace filter": (
        "{% set s = 'a' * 1000000 %}{{ (s|replace('a', s))|length }}",
        "the filter 'replace' would build",
    ),
    "str.join": ("{{ ('a' * 1000000).join(['b'] * 100000)|length }}", "str.join would build"),
    "the join filter": ("{{ (['b'] * 100000)|join('a' * 1000000) }}", "the filter 'join'"),
    # loops that write nothing the output cap could see
    "two nested loops of 10^5": (
        "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
        "steps",
    ),
    "a text doubled in a namespace": (
        '{% set ns = namespace(s="ab") %}{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}'
        "{% endfor %}{{ ns.s|length }}",
        "storing 2097152 items in a namespace",
    ),
    "a number squared in a namespace": (
        "{% set ns = namespace(x=9) %}{% for i in range(40) %}{% set ns.x = ns.x * ns.x %}"
        "{% endfor %}{{ ns.x }}",
        "a product of over 4300 digits",
    ),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_a_template_that_would_spend_the_machine_is_that_samples_error(name: str) -> None:
    source, needle = HOSTILE[name]
    check_template(source, "prompt.user")  # the sandbox's static checks pass: only rendering shows
    with pytest.raises(TemplateError) as caught:
        render(source, {"input": "ab"}, "sample 'a' user")
    message = str(caught.value)
    assert message.startswith("sample 'a' user: ") and needle in message, message
    assert "\n" not in message and "Traceback" not in message


def test_ordinary_uses_of_the_same_operators_still_render() -> None:
    source = (
        '{{ 2 ** 10 }} {{ "ab" * 3 }} {{ "%05d" % 42 }} {{ "{:>4}".format("x") }} '
        "{{ input|center(6) }} {{ [1] + [2] }} {{ ['x', 'y']|join(', ') }} "
        "{{ 'abc'|replace('b', 'B') }} {{ ', '.join(['p', 'q']) }} {{ 'a'.ljust(3) }}|"
        "{% set ns = namespace(n=0) %}{% for i in range(1000) %}{% set ns.n = ns.n + i %}"
        "{% endfor %} {{ ns.n }}"
    )
    assert render(source, {"input": "ab"}, "u") == (
        "1024 ababab 00042    x   ab   [1, 2] x, y aBc p, q a  | 499500"
    )


@pytest.mark.parametrize(
    "source",
    [
        "{% for i in [1] %}" * 25 + "x" + "{% endfor %}" * 25,
        "{% if true %}" * 120 + "x" + "{% endif %}" * 120,
    ],
    ids=["25_nested_loops", "120_nested_ifs"],
)
def test_blocks_nested_past_what_python_compiles_are_refused_when_checked(source: str) -> None:
    """They passed the checks and then failed every sample with a bare SyntaxError or
    IndentationError from Python's compiler ('too many statically nested blocks')."""
    with pytest.raises(TemplateError) as caught:
        check_template(source, "prompt.user")
    assert str(caught.value).startswith("prompt.user: the template nests its blocks too deeply")
    check_template("{% for i in [1] %}" * 15 + "x" + "{% endfor %}" * 15, "prompt.user")


@pytest.mark.slow  # a run directory, over a second
def test_a_run_with_such_a_prompt_fails_naming_the_sample_and_sends_nothing() -> None:
    with llm_server() as (url, server):
        experiment = Experiment.model_validate(
            {
                "id": "attacked_prompt",
                "backend": {
                    "id": "openai_compatible",
                    "endpoint_url": url,
                    "options": {"model": "m", "cache": False},
                },
                "pipeline": [
                    {
                        "name": "seed",
                        "module": "tests.helpers:SeedQuestions",
                        "options": {"count": 3},
                    },
                    {"name": "predict", "options": {"prompt": "{{ 9 ** (9 ** 9) }} {{ input }}"}},
                ],
            }
        )
        result = run(experiment)
    assert result.status == "failed" and result.failure is not None
    assert result.failure.reason == "invalid_prompt"
    assert "sample 'q0' user: 9 ** 387420489 has over 4300 digits" in result.failure.message
    assert server.requests == {}


@pytest.mark.parametrize(
    ("source", "name", "line"),
    [("Q\n{{ [1, 2, 3]|random }}", "random", 2), ("{{ lipsum(2) }}", "lipsum", 1)],
)
def test_unseeded_randomness_is_refused_when_checked(source: str, name: str, line: int) -> None:
    """Jinja2's random filter and lipsum draw from Python's unseeded random: a prompt using
    them changed from run to run (8 renders of [1..9]|random gave 6 different prompts)."""
    with pytest.raises(TemplateError) as caught:
        check_template(source, "prompt.user")
    assert str(caught.value) == (
        f"prompt.user: line {line} of the template: {name!r} is refused: it is drawn from an "
        "unseeded random generator, so the prompt would change between runs (few_shot draws "
        "seeded examples)"
    )
    with pytest.raises(TemplateError, match="unseeded random generator"):
        render(source, {}, "sample 'a' user")  # rendered unchecked, it is refused as well
