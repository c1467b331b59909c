"""Install into a `dg` project as a user does (issue 30 item 2): `create-dagster project`, then
`uv add` this checkout, then the `dg` commands the README gives, in the project's own venv on
Python 3.10 (the lowest version create-dagster projects allow, and so the lowest we support).

One project, one test (each step needs the ones before): create-dagster (the release of the
dagster installed here), `uv add --editable <checkout>` and `uv sync` (which must keep the
package, as it did not keep a `uv pip install`), `dg list components` shows the component, `dg
scaffold defs` writes a first experiment, `dg check defs` passes lenient with a broken file
present and fails strict (CRUCIBLE_STRICT=1, then the component's `strict: true`) naming the file
and line, and `dg launch` runs the first experiment into the project's artifacts folder.

It needs the package index (PyPI, or UV_DEFAULT_INDEX): skipped when that is unreachable and CI
is unset, failed under CI. uv's cache is the user's (UV_CACHE_DIR, else uv's default under
~/.cache), shared across runs so a rerun downloads nothing; uv never downloads a Python.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import sys
import urllib.request
from importlib.metadata import version
from pathlib import Path
from typing import NoReturn

import pytest

from tests.conftest import ROOT

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.network]

COMPONENT = "crucible_dagster.dagster_plugin.CrucibleExperimentsComponent"
BROKEN = "id: broken\npipeline:\n  - name: validate\nseed: high\n"
BROKEN_AT = "src/myproj/defs/exps/experiments/broken.yaml:4: seed: expected an integer"


def _missing(reason: str) -> NoReturn:
    """A missing prerequisite skips the test locally and fails it under CI."""
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


def _index_url() -> str:
    found = os.environ.get("UV_DEFAULT_INDEX") or os.environ.get("UV_INDEX_URL")
    return (found or "https://pypi.org/simple").rstrip("/") + "/"


def _index_reachable() -> bool:
    try:
        with urllib.request.urlopen(_index_url() + "dagster/", timeout=15) as answer:
            return bool(answer.status == 200)
    except OSError:
        return False


def _python_310() -> str:
    """A Python 3.10 on this machine: CRUCIBLE_PYTHON310, python3.10 on PATH, or pyenv's."""
    candidates = [os.environ.get("CRUCIBLE_PYTHON310"), shutil.which("python3.10")]
    candidates += sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.10.*/bin/python")))
    for candidate in filter(None, candidates):
        said = subprocess.run(
            [candidate, "-c", "import sys; print(sys.version_info[:2] == (3, 10))"],
            capture_output=True,
            text=True,
        )
        if said.stdout.strip() == "True":
            return candidate
    _missing("no Python 3.10 found (set CRUCIBLE_PYTHON310 to one)")


def _uv() -> str:
    found = Path(sys.executable).with_name("uv")  # the dev extra's
    tool = str(found) if found.exists() else shutil.which("uv")
    if tool is None:
        _missing("uv is not installed (pip install -e '.[dev]')")
    return tool


class Project:
    """The dg project and the environment its commands run in (the user's shell, minus this
    checkout's: no PYTHONPATH to the checkout, no active venv, no CRUCIBLE_* settings)."""

    def __init__(self, parent: Path, uv: str, python: str):
        self.root = parent / "myproj"
        self.uv = uv
        cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "uv"
        drop = ("CRUCIBLE_", "DAGSTER_", "VIRTUAL_ENV", "PYTHONPATH", "UV_PROJECT_ENVIRONMENT")
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
        self.env.update(
            UV_CACHE_DIR=os.environ.get("UV_CACHE_DIR") or str(cache),
            UV_PYTHON=python,
            UV_PYTHON_DOWNLOADS="never",
            UV_NO_PROGRESS="1",
            NO_COLOR="1",
            COLUMNS="200",
            DAGSTER_HOME=str(parent / "dagster_home"),  # outside: create-dagster wants no folder
        )
        (parent / "dagster_home").mkdir()
        (parent / "dagster_home" / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")

    def run(
        self, *command: str, ok: bool = True, cwd: Path | None = None, **env: str
    ) -> subprocess.CompletedProcess[str]:
        """``uv <command>`` in the project (or ``cwd``); ``ok``: it must exit 0."""
        said = subprocess.run(
            [self.uv, *command],
            cwd=cwd or self.root,
            env={**self.env, **env},
            capture_output=True,
            text=True,
            timeout=900,
        )
        if ok:
            assert said.returncode == 0, (command, said.stdout + said.stderr)
        return said

    def dg(self, *command: str, ok: bool = True, **env: str) -> subprocess.CompletedProcess[str]:
        """`uv run dg ...`, as the README says: uv syncs the project first, then runs its dg."""
        return self.run("run", "dg", *command, ok=ok, cwd=self.root, **env)


def _create(tmp: Path) -> Project:
    if not _index_reachable():
        _missing(f"the package index {_index_url()} is unreachable")
    project = Project(tmp, _uv(), _python_310())
    creator = f"create-dagster@{version('dagster')}"  # the release of the dagster used here
    project.run("tool", "run", creator, "project", "--no-uv-sync", "myproj", cwd=tmp)
    project.run("add", "--editable", str(ROOT))
    project.run("sync")  # what undid `uv pip install`: the package stays, as a dependency
    return project


def _check_installed(project: Project) -> None:
    config = (project.root / ".venv" / "pyvenv.cfg").read_text()
    assert "version_info = 3.10." in config, config  # the project really runs 3.10
    pyproject = (project.root / "pyproject.toml").read_text()
    assert '"crucible-dagster"' in pyproject, pyproject  # a dependency: uv sync keeps it
    said = project.dg("list", "components", "--json")
    listed = {item["key"]: item["summary"] for item in json.loads(said.stdout)["items"]}
    assert COMPONENT in listed, listed
    assert listed[COMPONENT].startswith("Crucible experiments"), listed[COMPONENT]


def _scaffold_a_bad_id(project: Project) -> None:
    """A bad id is one ``Error:`` line naming the parameter, and no folder is left behind."""
    params = json.dumps({"experiment_id": "bad id!"})
    said = project.dg("scaffold", "defs", COMPONENT, "bad", "--json-params", params, ok=False)
    assert said.returncode == 1, said.stdout + said.stderr
    assert "Traceback" not in said.stdout + said.stderr, said.stdout + said.stderr
    (line,) = [x for x in said.stderr.splitlines() if x.startswith("Error:")]
    assert line == (
        "Error: crucible: --json-params experiment_id: expected an experiment id of letters, "
        "digits and underscores (a valid Dagster name), got 'bad id!'; try 'bad_id'"
    ), said.stderr
    assert not (project.root / "src" / "myproj" / "defs" / "bad").exists()


def _scaffold(project: Project) -> Path:
    params = json.dumps({"experiment_id": "first"})
    project.dg("scaffold", "defs", COMPONENT, "exps", "--json-params", params)
    folder = project.root / "src" / "myproj" / "defs" / "exps"
    assert (folder / "defs.yaml").read_text().startswith(f"type: {COMPONENT}\n")
    assert (folder / "experiments" / "first.yaml").is_file()
    assert "/artifacts/" in (project.root / ".gitignore").read_text().splitlines()
    (folder / "experiments" / "broken.yaml").write_text(BROKEN)
    return folder


def _check_defs(project: Project, folder: Path) -> None:
    lenient = project.dg("check", "defs")
    output = lenient.stdout + lenient.stderr
    assert output.count(BROKEN_AT) == 1, output
    assert "This check still passes: set CRUCIBLE_STRICT=1" in output
    assert "All definitions loaded successfully" in output

    strict = project.dg("check", "defs", ok=False, CRUCIBLE_STRICT="1")  # the CI step
    output = strict.stdout + strict.stderr
    assert strict.returncode == 1, output
    assert "crucible strict mode" in output and BROKEN_AT in output, output
    assert "All definitions loaded successfully" not in output

    defs_yaml = folder / "defs.yaml"
    lenient_yaml = defs_yaml.read_text()
    defs_yaml.write_text(lenient_yaml + "  strict: true\n")
    try:
        by_attribute = project.dg("check", "defs", ok=False)
    finally:
        defs_yaml.write_text(lenient_yaml)
    output = by_attribute.stdout + by_attribute.stderr
    assert by_attribute.returncode == 1, output
    assert "crucible strict mode" in output and BROKEN_AT in output, output


def _launch(project: Project) -> None:
    said = project.dg("launch", "--job", "first")
    runs = list((project.root / "artifacts" / "first").iterdir())
    assert len(runs) == 1, (runs, said.stdout + said.stderr)
    manifest = json.loads((runs[0] / "manifest.json").read_text())
    assert manifest["status"] == "completed", manifest
    assert f"crucible: run directory {runs[0]}" in said.stdout + said.stderr
    assert (runs[0] / "summary.md").is_file()


@pytest.mark.timeout(1800)  # a cold uv cache downloads dagster and every dependency
def test_a_dg_project_adds_scaffolds_checks_and_launches_crucible(tmp_path: Path) -> None:
    project = _create(tmp_path)
    _check_installed(project)
    _scaffold_a_bad_id(project)
    folder = _scaffold(project)
    _check_defs(project, folder)
    _launch(project)
