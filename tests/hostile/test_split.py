"""The command line after its split into cli/ (issue 23): both entry points still end at the one
error boundary, and that boundary is the only place an exception is caught broadly.

A hostile experiment file given to `crucible` (the console script's entry point) and to
`python -m crucible_dagster.cli`, as real processes: exit 1, one line naming the file and the
line, no traceback, nothing created or changed in the working folder.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from crucible_dagster.cli import boundary, build_parser
from tests.conftest import ROOT, subprocess_env
from tests.hostile.conftest import snapshot
from tests.hostile.test_cli_boundary import leaf_commands

CLI = ROOT / "crucible_dagster" / "cli"
# what the console script `crucible` does: load the [project.scripts] entry point and call it
CONSOLE_SCRIPT = (
    "import sys; from importlib.metadata import entry_points; "
    "(ep,) = entry_points(group='console_scripts', name='crucible'); sys.exit(ep.load()())"
)
ENTRY_POINTS = {
    "console_script": [sys.executable, "-c", CONSOLE_SCRIPT],
    "python_m": [sys.executable, "-m", "crucible_dagster.cli"],
}


@pytest.mark.slow
@pytest.mark.parametrize("command", ["validate", "run", "plan"])
@pytest.mark.parametrize("entry", sorted(ENTRY_POINTS))
def test_each_entry_point_reports_a_broken_file_in_one_line(
    tmp_path: Path, entry: str, command: str
) -> None:
    (tmp_path / "broken.yaml").write_text("id: e\npipeline: [unclosed\n  - {\n")
    before = snapshot(tmp_path), sorted(p.name for p in tmp_path.iterdir())
    done = subprocess.run(
        [*ENTRY_POINTS[entry], command, "broken.yaml"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=subprocess_env(CRUCIBLE_ARTIFACTS_DIR=str(tmp_path / "artifacts")),
        timeout=120,
    )
    said = [ln for ln in (done.stdout + done.stderr).splitlines() if "valid, " not in ln]
    assert done.returncode == 1, done.stdout + done.stderr
    assert len(said) == 1 and "broken.yaml" in said[0] and ":3" in said[0], said
    assert "Traceback" not in done.stdout + done.stderr
    assert (snapshot(tmp_path), sorted(p.name for p in tmp_path.iterdir())) == before


def test_the_console_script_is_the_boundarys_main() -> None:
    from importlib.metadata import entry_points

    (ep,) = entry_points(group="console_scripts", name="crucible")
    assert ep.value == "crucible_dagster.cli:main"
    assert ep.load() is boundary.main


def test_every_command_is_defined_in_cli_and_dispatched_by_the_boundary() -> None:
    """Each leaf command runs a function of a cli module; only ``boundary._dispatch`` calls it."""
    for words, sub in leaf_commands(build_parser()):
        func = sub.get_default("func")
        assert func is not None, words
        assert func.__module__.startswith("crucible_dagster.cli."), (words, func.__module__)
        assert func.__module__ != "crucible_dagster.cli.boundary", words


def _broad_handlers(path: Path) -> list[int]:
    """Lines of ``except:``, ``except Exception`` and ``except BaseException`` in ``path``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, ast.ExceptHandler):
            continue
        caught = node.type.elts if isinstance(node.type, ast.Tuple) else [node.type]
        names = {c.id for c in caught if isinstance(c, ast.Name)} if node.type else {"(bare)"}
        if names & {"(bare)", "Exception", "BaseException"}:
            found.append(node.lineno)
    return found


def test_the_error_boundary_is_in_one_place() -> None:
    """A command module catching everything would hide a bug as a user error (or as success)."""
    modules = sorted(CLI.glob("*.py"))
    assert len(modules) > 5, modules  # the package exists and is split
    broad = {p.name: _broad_handlers(p) for p in modules}
    assert broad.pop("boundary.py"), "the boundary itself catches everything"
    assert not any(broad.values()), broad
    printers = [p.name for p in modules if "import traceback" in p.read_text()]
    assert printers == ["boundary.py"], printers  # only the boundary prints one (under --debug)
