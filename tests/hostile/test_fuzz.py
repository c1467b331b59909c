"""Property-based fuzzing of the loader: no document, however odd, gives a traceback or hangs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crucible_dagster.experiment.problems import ExperimentError
from crucible_dagster.runtime.preflight import check_file

values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=30,
)
experiment_like = st.fixed_dictionaries(
    {},
    optional={
        "id": values | st.from_regex(r"[A-Za-z_]{1,10}", fullmatch=True),
        "pipeline": values
        | st.lists(st.fixed_dictionaries({"name": values}, optional={"options": values})),
        "seed": values,
        "parameters": values,
        "outputs": values,
        "reliability": values,
        "quality_targets": values,
    },
)
FUZZ = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def _checked(path: Path) -> None:
    checked = check_file(path)  # never raises: a problem or an experiment
    assert checked.experiment is not None or checked.problems
    for problem in checked.problems:
        assert str(problem).startswith(str(path.name)) or path.name in str(problem)


@FUZZ
@given(data=st.binary(max_size=400))
def test_arbitrary_bytes(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "fuzz.yaml"
    path.write_bytes(data)
    _checked(path)


@pytest.mark.slow  # a property search of 150 documents: about 3 s
@FUZZ
@given(doc=experiment_like | values)
def test_arbitrary_yaml_documents(tmp_path: Path, doc: object) -> None:
    path = tmp_path / "fuzz.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True))
    _checked(path)


@pytest.mark.slow  # a property search of 150 documents: about 3 s
@FUZZ
@given(doc=experiment_like | values)
def test_arbitrary_json_documents(tmp_path: Path, doc: object) -> None:
    path = tmp_path / "fuzz.json"
    path.write_text(json.dumps(doc))
    _checked(path)


@pytest.mark.slow
@FUZZ
@given(text=st.text(alphabet="{}[]:,-&*!|>'\"\n #a1.", max_size=200))
def test_yaml_punctuation_soup(tmp_path: Path, text: str) -> None:
    path = tmp_path / "soup.yaml"
    path.write_text(text)
    _checked(path)


def test_problems_are_experiment_errors_never_other_exceptions() -> None:
    from crucible_dagster.experiment.loading import parse_document

    for text in ("a: [", "!!python/name:os.system", "x: &a [*a]", "\x00", "{" * 5000):
        try:
            parse_document(text, "t.yaml")
        except ExperimentError as exc:
            assert exc.problems and exc.problems[0].file == "t.yaml"
