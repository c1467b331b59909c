"""The IR: loading, errors with file/line/field, round trips, legacy spellings, scenario 21."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crucible_dagster import Experiment, ExperimentError, dump_experiment, loads_experiment
from crucible_dagster.experiment.ir import BackendRef, Ensemble, Hedging, Stats
from crucible_dagster.experiment.loading import experiment_json_schema, load_experiment
from crucible_dagster.experiment.names import DAGSTER_RESERVED
from crucible_dagster.runtime.preflight import check_file
from crucible_dagster.sweeps.grid import expand_grid


def errors_of(text: str) -> list[str]:
    with pytest.raises(ExperimentError) as err:
        loads_experiment(text)
    return [str(p) for p in err.value.problems]


def test_error_names_file_line_field_expected_and_found(tmp_path: Path) -> None:
    path = tmp_path / "foo.yaml"
    path.write_text(
        "id: foo\npipeline:\n  - name: validate\nreliability:\n  stats:\n    alpha: high\n"
    )
    with pytest.raises(ExperimentError) as err:
        load_experiment(path)
    (problem,) = err.value.problems
    assert problem.line == 6
    assert problem.field == "reliability.stats.alpha"
    assert str(problem).endswith(
        "foo.yaml:6: reliability.stats.alpha: expected a number in (0, 1), got 'high'"
    )


def test_all_errors_at_once() -> None:
    problems = errors_of("id: bad-id\nseed: x\npipeline: []\n")
    assert len(problems) == 3
    assert (
        any("id:" in p for p in problems)
        and any("seed:" in p for p in problems)
        and any("pipeline:" in p for p in problems)
    )


def test_stages_alias_and_legacy_names() -> None:
    exp = loads_experiment(
        "id: a\nstages:\n  - name: validate\nreliability:\n  stats:\n"
        "    tests: [mannwhitney, kruskal]\n    multiple_testing_correction: fdr\n    options: null\n"
    )
    assert exp.pipeline[0].name == "validate"
    assert exp.reliability and exp.reliability.stats
    assert exp.reliability.stats.tests == ["mann_whitney", "kruskal_wallis"]
    assert exp.reliability.stats.multiple_testing_correction == "benjamini_hochberg"
    assert exp.reliability.stats.options == {}


def test_yaml_scientific_notation_is_a_float() -> None:
    exp = loads_experiment(
        "id: a\npipeline: [{name: validate}]\nparameters:\n  learning_rate: [1e-4, 2e-4]\n"
    )
    assert exp.parameters["learning_rate"] == [1e-4, 2e-4]


def test_scenario_21_ir_validation() -> None:
    assert any(
        "pipeline: expected at least 1 item(s)" in p for p in errors_of("id: test\npipeline: []\n")
    )
    with pytest.raises(ValueError):
        BackendRef(id=None)
    with pytest.raises(ValueError, match="less than 1"):
        Stats(alpha=1.5)
    assert any(
        "strategy: expected one of: none, majority, weighted, best_confidence, unanimous, got 'invalid'"
        in p
        for p in errors_of(
            "id: t\npipeline: [{name: validate}]\nreliability: {ensemble: {strategy: invalid}}\n"
        )
    )
    assert any(
        "strategy: expected one of: off, fixed, percentile, adaptive, workload_aware, "
        "exponential_backoff, got 'invalid'" in p
        for p in errors_of(
            "id: t\npipeline: [{name: validate}]\nreliability: {hedging: {strategy: invalid}}\n"
        )
    )
    assert BackendRef.model_validate_json('{"id":"gpt4","profile":"default"}') == BackendRef(
        id="gpt4", profile="default"
    )
    assert Ensemble().strategy == "none" and Hedging().strategy == "off"


def test_scenario_22_generate_runs() -> None:
    exp = Experiment(
        id="t",
        pipeline=[{"name": "validate"}],
        parameters={"lora_rank": [16, 32], "learning_rate": [1e-4, 2e-4]},
    )
    trials = expand_grid(exp)
    assert [(t.params["learning_rate"], t.params["lora_rank"]) for t in trials] == [
        (1e-4, 16),
        (1e-4, 32),
        (2e-4, 16),
        (2e-4, 32),
    ]
    assert len({t.run_id for t in trials}) == 4 and {t.status for t in trials} == {"pending"}
    assert trials[0].trial_id == "learning_rate_0_0001__lora_rank_16"
    assert [t.params for t in expand_grid(Experiment(id="t", pipeline=[{"name": "validate"}]))] == [
        {}
    ]
    seeded = expand_grid(
        Experiment(id="t", pipeline=[{"name": "validate"}], parameters={"a": [1]}, seeds=[1, 2])
    )
    assert [t.trial_id for t in seeded] == ["a_1__seed_1", "a_1__seed_2"]
    assert any(
        "expected a threshold between 0 and 1, got 1.5" in p
        for p in errors_of(
            "id: t\npipeline: [{name: validate}]\nquality_targets: {accuracy: 1.5}\n"
        )
    )


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(10**6), 10**6)
    | st.floats(allow_nan=False, allow_infinity=False, width=32)
    | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(st.text(min_size=1, max_size=6), children, max_size=3)
    ),
    max_leaves=8,
)
names = st.from_regex(r"[A-Za-z][A-Za-z0-9]{0,4}(_[A-Za-z0-9]{1,4}){0,2}", fullmatch=True)


@st.composite
def experiments(draw: st.DrawFn) -> Experiment:
    stage_names = draw(st.lists(names, min_size=1, max_size=4, unique=True))
    pipeline = [
        {
            "name": n,
            "options": draw(st.dictionaries(names, json_values, max_size=3)),
            "enabled": draw(st.booleans()),
        }
        for n in stage_names
    ]
    data = {
        "id": draw(names.filter(lambda n: n not in DAGSTER_RESERVED)),
        "pipeline": pipeline,
        "description": draw(st.none() | st.text(max_size=20)),
        "tags": draw(st.none() | st.lists(st.text(max_size=5), max_size=3)),
        "seed": draw(st.none() | st.integers(0, 2**31)),
        "seeds": draw(st.lists(st.integers(0, 100), max_size=3, unique=True)),
        "parameters": draw(
            st.dictionaries(
                names,
                st.lists(
                    json_values,
                    min_size=1,
                    max_size=3,
                    unique_by=lambda v: json.dumps(v, sort_keys=True) + type(v).__name__,
                ),
                max_size=2,
            )
        ),
        "outputs": [
            {
                "name": "r",
                "formats": draw(
                    st.lists(
                        st.sampled_from(["markdown", "json", "html", "csv"]),
                        min_size=1,
                        max_size=4,
                        unique=True,
                    )
                ),
            }
        ],
        "reliability": {
            "stats": {
                "alpha": draw(st.floats(0, 1, exclude_min=True, exclude_max=True)),
                "tests": draw(
                    st.lists(st.sampled_from(["ttest", "wilcoxon", "bootstrap"]), max_size=3)
                ),
            }
        },
        "metadata": draw(st.none() | st.dictionaries(names, json_values, max_size=2)),
    }
    return Experiment.model_validate(data)


@pytest.mark.slow
@settings(max_examples=60, deadline=None)
@given(experiments())
def test_dump_load_roundtrip(exp: Experiment) -> None:
    assert loads_experiment(dump_experiment(exp, "yaml"), "yaml") == exp
    assert loads_experiment(dump_experiment(exp, "json"), "json") == exp


def test_json_schema_for_editors() -> None:
    schema = experiment_json_schema()
    assert schema["title"] == "Crucible experiment"
    assert {"id", "pipeline", "parameters", "schedule"} <= set(schema["properties"])
    json.dumps(schema)


@pytest.mark.integration  # a schedule's cron is checked by Dagster's own validator
def test_example_files_load_and_pass_every_check() -> None:
    root = Path(__file__).resolve().parent.parent / "experiments"
    paths = sorted(root.glob("*.yaml"))
    assert {p.stem for p in paths} >= {
        "bench_optional_demo",
        "classifier_comparison",
        "classifier_sweep",
        "core_pipeline_demo",
        "trace_demo",
    }
    for path in paths:
        checked = check_file(path)
        assert checked.ok, [str(p) for p in checked.problems]
        assert checked.experiment is not None and checked.experiment.id == path.stem
