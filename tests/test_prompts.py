"""Prompt templates (predict.options.prompt): rendering, the sandbox, few-shot draws, the
requests a dry run counts, which samples predict reads, and prompt-named sweep trials."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from crucible_dagster import Experiment
from crucible_dagster.common.templates import (
    MAX_RENDERED_CHARS,
    TemplateError,
    check_template,
    render,
)
from crucible_dagster.evaluation.few_shot import FewShot, draw_shots
from crucible_dagster.evaluation.per_sample import inputs_key, samples_of
from crucible_dagster.evaluation.predict import PredictOptions, PredictStage
from crucible_dagster.evaluation.prompts import (
    PromptSpec,
    messages_for,
    render_all,
    render_requests,
)
from crucible_dagster.runtime.context import Context
from crucible_dagster.runtime.stage import StageError
from crucible_dagster.sweeps.grid import expand_grid


def shots_file(folder: Path, count: int = 10) -> str:
    lines = [json.dumps({"question": f"{i}+1", "reference": str(i + 1)}) for i in range(count)]
    (folder / "shots.jsonl").write_text("\n".join(lines) + "\n")
    return "shots.jsonl"


def test_a_plain_string_is_the_user_template() -> None:
    options = PredictOptions.model_validate({"prompt": "Q: {{ question }}"})
    assert options.prompt == PromptSpec(user="Q: {{ question }}")


def test_messages_are_system_then_each_shot_as_a_turn_then_the_question() -> None:
    prompt = PromptSpec(
        system="You add numbers for {{ who }}.",
        user="Q: {{ question }}",
        few_shot=FewShot(file="x.jsonl", n=2, assistant="A: {{ reference }}"),
    )
    shots = [{"question": "1+1", "reference": "2"}, {"question": "2+2", "reference": "4"}]
    messages = messages_for(prompt, {"question": "3+4", "who": "Ana"}, shots, "sample 's'")
    assert messages == [
        {"role": "system", "content": "You add numbers for Ana."},
        {"role": "user", "content": "Q: 1+1"},
        {"role": "assistant", "content": "A: 2"},
        {"role": "user", "content": "Q: 2+2"},
        {"role": "assistant", "content": "A: 4"},
        {"role": "user", "content": "Q: 3+4"},
    ]


def test_a_field_that_is_not_an_identifier_is_read_through_example() -> None:
    assert render('{{ example["the question"] }}?', {"the question": "why"}, "x") == "why?"


def test_a_field_one_sample_lacks_is_an_error_naming_that_sample() -> None:
    prompt = PromptSpec(user="Q: {{ question }}")
    samples = [("a", {"question": "1+1"}), ("b", {"input": "2+2"})]
    with pytest.raises(TemplateError) as caught:
        render_all(prompt, samples, 0, None)
    message = str(caught.value)
    assert "sample 'b' user" in message and "'question' is undefined" in message
    assert "the fields: input" in message


@pytest.mark.parametrize(
    "source",
    [
        "{{ ''.__class__ }}",
        "{{ x['__globals__'] }}",
        "{{ x|attr('__class__') }}",
        "{{ f.__code__ }}",
        "{{ g.gi_frame }}",
        "{{ cycler.__init__.__globals__ }}",
        "{{ ''.mro() }}",
        "line one\n{% for c in x %}{{ c.__subclasses__() }}{% endfor %}",
    ],
)
def test_sandbox_escapes_are_refused_before_any_render(source: str) -> None:
    with pytest.raises(TemplateError, match=r"is refused \(templates run sandboxed"):
        check_template(source, "prompt.user")


def test_the_refusal_names_the_line_in_the_template() -> None:
    with pytest.raises(
        TemplateError, match=re.escape("prompt.user: line 2 of the template: '__class__'")
    ):
        check_template("ok\n{{ x.__class__ }}", "prompt.user")


@pytest.mark.parametrize(
    "source",
    ["{{ x|attr('_' ~ '_class__') }}", "{{ items.append(1) }}", "{{ example.update(a=1) }}"],
)
def test_what_only_rendering_shows_is_refused_by_the_sandbox_naming_the_sample(
    source: str,
) -> None:
    check_template(source, "prompt.user")  # nothing to see before the values are known
    with pytest.raises(TemplateError, match="sample 'a' user: refused by the sandbox"):
        render_all(PromptSpec(user=source), [("a", {"x": "s", "items": [1]})], 0, None)


def test_a_rendered_message_over_the_cap_is_an_error_not_a_huge_request() -> None:
    source = "{% for i in range(100000) %}{{ 'x' * 100 }}{% endfor %}"
    with pytest.raises(TemplateError, match=f"over {MAX_RENDERED_CHARS} characters"):
        render(source, {}, "sample 'a' user")


def test_few_shot_draws_are_seeded_by_the_run_and_by_few_shot_seed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    few_shot = FewShot(file=shots_file(tmp_path), n=3)
    pool = [json.loads(line) for line in (tmp_path / "shots.jsonl").read_text().splitlines()]
    first = draw_shots(few_shot, 5)
    assert first == draw_shots(few_shot, 5)  # a re-run draws the same shots
    expected = np.random.default_rng(5).choice(10, size=3, replace=False)
    assert first == [pool[int(i)] for i in expected]
    assert len({json.dumps(draw_shots(few_shot, seed)) for seed in range(5)}) > 1
    fixed = FewShot(file="shots.jsonl", n=3, seed=5)
    assert draw_shots(fixed, 1) == draw_shots(fixed, 2) == first


def test_more_shots_than_the_pool_has_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match=re.escape("few_shot.n: 4 shots asked, shots.jsonl has 3")):
        draw_shots(FewShot(file=shots_file(tmp_path, 3), n=4), 0)


def test_render_requests_gives_a_dry_run_the_messages_predict_would_send(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    frame = pd.DataFrame(
        {"question": ["3+4", "5+6"], "reference": ["7", "11"]}, index=pd.Index(["x", "y"])
    )
    options = {
        "prompt": {"user": "{{ question }}", "few_shot": {"file": shots_file(tmp_path), "n": 1}}
    }
    requests = render_requests(frame, options, seed=3)
    assert [r.sample_id for r in requests] == ["x", "y"]
    assert [r.input for r in requests] == ["3+4", "5+6"]  # a text backend's input
    first, second = (r.messages or [] for r in requests)
    assert len(first) == 3 and first[2] == {"role": "user", "content": "3+4"}
    assert first[:2] == second[:2]  # one draw for every sample
    again = render_requests(frame, PredictOptions.model_validate(options), 3)
    assert [(r.sample_id, r.input, r.messages) for r in again] == [
        (r.sample_id, r.input, r.messages) for r in requests
    ]
    plain = render_requests([{"id": "q", "input": "hi"}], {}, seed=0)
    assert [(r.sample_id, r.input, r.messages) for r in plain] == [("q", "hi", None)]


def test_which_samples_predict_reads_when_inputs_is_not_given() -> None:
    examples = pd.DataFrame({"input": ["a", "b"], "reference": ["1", "2"]}, index=["s1", "s2"])
    features = pd.DataFrame({"x": [1.0, 2.0]})
    both = Context("e", "r", assigns={"examples": examples, "features": features, "target": [0, 1]})
    plain, prompted = PredictOptions(), PredictOptions.model_validate({"prompt": "{{ input }}"})
    assert inputs_key(both, plain) == "features"  # the scikit-learn demo's feature rows
    assert inputs_key(both, plain, prompted=True) == "examples"
    only = Context("e", "r", assigns={"examples": examples})
    assert inputs_key(only, plain) == "examples"
    samples = samples_of(only, plain)
    assert [(r.sample_id, r.input) for r in samples.requests] == [("s1", "a"), ("s2", "b")]
    assert samples.references == {"s1": "1", "s2": "2"}  # no 'target' field: 'reference'
    assert samples_of(both, prompted, prompted=True).examples == [
        ("s1", {"input": "a", "reference": "1"}),
        ("s2", {"input": "b", "reference": "2"}),
    ]
    assert samples_of(both, plain).frame is features


def test_two_examples_with_one_id_are_refused() -> None:
    ctx = Context(
        "e", "r", assigns={"examples": [{"id": 1, "input": "a"}, {"id": "1", "input": "b"}]}
    )
    with pytest.raises(StageError, match="sample id '1' twice"):
        samples_of(ctx, PredictOptions())


def test_a_sweep_over_prompts_names_its_trials_by_the_prompts_names() -> None:
    experiment = Experiment.model_validate(
        {
            "id": "prompts",
            "parameters": {
                "prompt": [
                    {"name": "terse", "user": "{{ q }}"},
                    {"name": "polite", "user": "Please: {{ q }}"},
                ]
            },
            "seeds": [1, 2],
            "pipeline": [{"name": "predict", "options": {"prompt": "${params.prompt}"}}],
        }
    )
    assert [t.trial_id for t in expand_grid(experiment)] == [
        "prompt_terse__seed_1",
        "prompt_terse__seed_2",
        "prompt_polite__seed_1",
        "prompt_polite__seed_2",
    ]  # the grid's order; the ids say the prompt's name, not its text


def test_template_option_errors_name_the_field_and_the_line_in_the_template() -> None:
    assert PredictStage.check_options({"prompt": {"user": "a\n{{ q }"}}) == [
        "prompt.user: template syntax error at line 2 of the template: unexpected '}'"
    ]
    assert PredictStage.check_options({"prompt": {"user": "x", "few_shot": {"n": 1}}}) == [
        "prompt.few_shot: expected exactly one of 'split' and 'file'"
    ]
