"""``options.base_url_env``: an environment variable naming the OpenAI-compatible API root (the
same experiment file points at the bundled server, vLLM, llama.cpp or Ollama). A setting and
a way in: its name is checked, and the URL it holds is refused as the file's own would be (a
password, a scheme that is not http(s), control characters) by validate, the Dagster loader
and the run alike, naming the variable; set but empty, the file's endpoint is used."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from crucible_dagster.backends.base import Request
from crucible_dagster.backends.registry import BackendError, build_backend, check_backend
from crucible_dagster.contrib.llm_server import llm_server
from crucible_dagster.experiment.ir import BackendRef
from tests.hostile.conftest import Cli

VAR = "CRUCIBLE_TEST_LLM_URL"
PASSWORD = "pw-71c3"


def ref(endpoint: str = "http://127.0.0.1:9/v1", **options: Any) -> BackendRef:
    return BackendRef.model_validate(
        {
            "id": "openai_compatible",
            "endpoint_url": endpoint,
            "options": {"model": "m", "cache": False, "base_url_env": VAR, **options},
        }
    )


def test_the_variable_when_set_is_asked_instead_of_the_file_endpoint(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with llm_server() as (url, server):
        monkeypatch.setenv(VAR, url)
        (answer,) = build_backend(ref(base_url="http://127.0.0.1:9/v2")).predict(
            [Request("a", "1+2")]
        )
    assert answer.output == "3" and server.requests == {"m": 1}


@pytest.mark.parametrize("value", [None, ""], ids=["unset", "empty"])
def test_unset_or_empty_the_file_endpoint_is_the_default(
    monkeypatch: pytest.MonkeyPatch, value: str | None
) -> None:
    with llm_server() as (url, server):
        if value is None:
            monkeypatch.delenv(VAR, raising=False)
        else:
            monkeypatch.setenv(VAR, value)
        (answer,) = build_backend(ref(url)).predict([Request("a", "2+2")])
    assert answer.output == "4" and server.requests == {"m": 1}


@pytest.mark.parametrize(
    ("name", "phrase"),
    [
        ("A-B", "expected an environment variable's name"),
        ("1URL", "expected an environment variable's name"),
        ("", "expected an environment variable's name"),
        ("X" * 129, "at most 128"),
        (True, "Input should be a valid string"),
        (5, "Input should be a valid string"),
    ],
    ids=["dash", "digit_first", "empty", "too_long", "bool", "number"],
)
def test_a_name_that_is_no_variable_is_refused_at_its_field(name: Any, phrase: str) -> None:
    with pytest.raises(BackendError) as raised:
        check_backend(ref(base_url_env=name), "backend")
    assert str(raised.value).startswith("backend.options.base_url_env: ")
    assert phrase in str(raised.value)


#: (case, the variable's value, the one line's phrase)
BAD_VALUES = [
    ("password", f"http://me:{PASSWORD}@127.0.0.1:9/v1", "a user name or password in the URL"),
    ("file", "file:///etc/passwd", "expected an http:// or https:// URL, found 'file:///etc"),
    ("no_scheme", "127.0.0.1:8000/v1", "expected an http:// or https:// URL"),
    ("control", "http://127.0.0.1:9/v1\x1b[31m", "found 'http://127.0.0.1:9/v1\\x1b[31m'"),
    ("spaces", "   ", "expected an http:// or https:// URL, found '   '"),
]


@pytest.mark.integration  # the Dagster loader is one of the three that refuse it
@pytest.mark.parametrize(("case", "value", "phrase"), BAD_VALUES, ids=[c[0] for c in BAD_VALUES])
def test_a_bad_url_in_the_variable_is_refused_by_validate_the_loader_and_the_run(
    cli: Cli,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    case: str,
    value: str,
    phrase: str,
) -> None:
    from tests.hostile.test_settings_parity import _refused_everywhere

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(VAR, value)
    text = (
        "id: parity\npipeline:\n  - name: predict\n"
        "backend: {id: openai_compatible, endpoint_url: 'http://127.0.0.1:9/v1', "
        f"options: {{model: m, base_url_env: {VAR}}}}}\n"
    )
    field = f"backend.options.base_url_env (${VAR})"
    _refused_everywhere(cli, tmp_path, case, text, 4, field, phrase)
    for command in ("validate", "run"):
        said = cli(command, f"experiments/{case}.yaml").text
        assert PASSWORD not in said and "\x1b" not in said
