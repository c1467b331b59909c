"""`dg check defs` and `dagster definitions validate` on a project with broken experiments, run
as a user runs them (issue 30 item 1): lenient passes and prints each problem once, saying how
to make it fail; strict (CRUCIBLE_STRICT=1) exits non-zero listing every problem located."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

pytestmark = [pytest.mark.integration, pytest.mark.slow]

BIN = Path(sys.executable).parent
TYPE = "type: crucible_dagster.dagster_plugin.CrucibleExperimentsComponent\n"
DEFINITIONS = """\
from pathlib import Path

import dagster as dg


@dg.definitions
def defs():
    return dg.load_from_defs_folder(path_within_project=Path(__file__).parent)
"""
BAD_YAML = "src/dgcheck/defs/exps/experiments/bad.yaml:2: (root): invalid YAML"
BAD_SEED = "src/dgcheck/defs/exps/experiments/seed.yaml:4: seed: expected an integer"
MISSING = "src/dgcheck/defs/gone/defs.yaml:3: attributes.path: the experiments folder"


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Created once (like create-dagster's layout): two good experiments, two broken files,
    and a second component whose folder is missing."""
    root = tmp_path_factory.mktemp("dgcheck")
    package = root / "src" / "dgcheck"
    (package / "defs" / "exps" / "experiments").mkdir(parents=True)
    (package / "defs" / "gone").mkdir()
    (root / "pyproject.toml").write_text(
        '[project]\nname = "dgcheck"\nversion = "0.1.0"\n\n'
        '[tool.dg]\ndirectory_type = "project"\n\n[tool.dg.project]\nroot_module = "dgcheck"\n'
    )
    (package / "__init__.py").write_text("")
    (package / "definitions.py").write_text(DEFINITIONS)
    (package / "defs" / "__init__.py").write_text("")
    (package / "defs" / "exps" / "defs.yaml").write_text(
        TYPE + "attributes:\n  path: experiments\n"
    )
    (package / "defs" / "gone" / "defs.yaml").write_text(TYPE + "attributes:\n  path: missing\n")
    experiments = package / "defs" / "exps" / "experiments"
    (experiments / "trace.yaml").write_text((ROOT / "experiments" / "trace_demo.yaml").read_text())
    (experiments / "bad.yaml").write_text("id: [unclosed\n")
    (experiments / "seed.yaml").write_text(
        "id: seeded\npipeline:\n  - name: validate\nseed: high\n"
    )
    (root / ".dagster_home").mkdir()  # dagster definitions validate needs it to exist
    return root


def _run(
    project: Path, *command: str, strict: str | None = None
) -> subprocess.CompletedProcess[str]:
    tool = BIN / command[0]
    if not tool.exists():
        if os.environ.get("CI"):
            pytest.fail(f"{tool} is missing: the dev extra installs dagster-dg-cli")
        pytest.skip(f"{tool} is not installed (pip install -e '.[dev]')")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRUCIBLE_")}
    env.update({"NO_COLOR": "1", "DAGSTER_HOME": str(project / ".dagster_home")})
    if strict is not None:
        env["CRUCIBLE_STRICT"] = strict
    return subprocess.run(
        [str(tool), *command[1:]],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_lenient_dg_check_defs_passes_printing_each_problem_once(project: Path) -> None:
    said = _run(project, "dg", "check", "defs", "--use-active-venv")
    output = said.stdout + said.stderr
    assert said.returncode == 0, output
    for problem in (BAD_YAML, BAD_SEED, MISSING):
        assert output.count(problem) == 1, (problem, output)  # was printed twice
    assert "does not exist" in output
    assert "This check still passes: set CRUCIBLE_STRICT=1" in output
    assert "Traceback" not in output


@pytest.mark.parametrize(
    "command",
    [
        ("dg", "check", "defs", "--use-active-venv"),
        ("dagster", "definitions", "validate", "-m", "dgcheck.definitions", "-d", "src"),
    ],
)
def test_strict_fails_the_check_listing_every_problem(
    project: Path, command: tuple[str, ...]
) -> None:
    said = _run(project, *command, strict="1")
    output = said.stdout + said.stderr
    assert said.returncode == 1, output
    assert "crucible strict mode" in output
    # the first component in path order fails the load: every problem of it, located
    for problem in (BAD_YAML, BAD_SEED):
        assert output.count(problem) == 1, (problem, output)
    assert "All definitions loaded successfully" not in output


def test_a_bad_crucible_strict_fails_the_check_naming_it(project: Path) -> None:
    said = _run(project, "dg", "check", "defs", "--use-active-venv", strict="sometimes")
    output = said.stdout + said.stderr
    assert said.returncode == 1
    assert "CRUCIBLE_STRICT: expected 1, true, yes, on (strict)" in output
    assert "found 'sometimes'" in output


def test_each_problem_is_logged_once_per_load_of_the_location(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Dagster builds a @definitions function twice per load (INITIALIZATION, then a
    RECONSTRUCTION context made from it): the second build logs nothing new; a reload does."""
    from dagster._core.definitions.definitions_load_context import (
        DefinitionsLoadContext,
        DefinitionsLoadType,
    )

    from crucible_dagster.dagster_plugin import definitions_from_folder

    (tmp_path / "bad.yaml").write_text("id: [\n")
    initialization = DefinitionsLoadContext(DefinitionsLoadType.INITIALIZATION)
    reconstruction = DefinitionsLoadContext(DefinitionsLoadType.RECONSTRUCTION)
    reload = DefinitionsLoadContext(DefinitionsLoadType.INITIALIZATION)
    counts = []
    with caplog.at_level(logging.ERROR, logger="crucible_dagster"):
        for context in (initialization, reconstruction, reload):
            with DefinitionsLoadContext.scoped(context):
                definitions_from_folder(tmp_path)
            counts.append(caplog.text.count("bad.yaml:2: (root): invalid YAML"))
    assert counts == [1, 1, 2]
