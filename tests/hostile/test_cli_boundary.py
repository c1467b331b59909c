"""The command line's one error boundary (issue 22, section 2).

Every subcommand, found in the real argparse parser so a new one is covered without editing
this file, is fed each hostile input; each answer is one line naming the input, exit 1 (2 for
argparse's own usage errors), no traceback, no control character on the terminal and no file
created or changed anywhere under the test's folder.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from crucible_dagster.cli import EXIT_INTERNAL, EXIT_INTERRUPTED, build_parser, main
from crucible_dagster.runtime.stage import Stage
from tests.hostile.conftest import Cli, Said, snapshot

# what a terminal would act on: C0 (but newline and tab), DEL, C1 and bidi overrides
RAW_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
TALLY = re.compile(r"\d+ valid, \d+ invalid")  # validate's count, printed after its problems
UNKNOWN_ID = "no_such_run_42"
CONTROL_CHARS = "bad\x1b[31mred\x07\r\nline\u202etxt"


def leaf_commands(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()) -> list[Any]:
    """Every runnable subcommand as (words, its parser), nested subcommands included."""
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                found += leaf_commands(child, (*prefix, name))
    return found or [(prefix, parser)]


COMMANDS = {" ".join(words): sub for words, sub in leaf_commands(build_parser())}


def positionals(sub: argparse.ArgumentParser) -> list[argparse.Action]:
    return [a for a in sub._actions if not a.option_strings]


def hostile_inputs(root: Path) -> dict[str, tuple[str, str]]:
    """kind -> (the argument, the text the one line must contain to name it)."""
    folder = root / "in"
    folder.mkdir()
    (folder / "directory.yaml").mkdir()
    (folder / "non_utf8.yaml").write_bytes(b"id: e\xff\xfe\npipeline: []\n")
    (folder / "broken.yaml").write_text("id: [unclosed\n  pipeline: {\n")
    os.mkfifo(folder / "fifo.yaml")
    return {
        "missing": (str(folder / "missing.yaml"), "missing.yaml"),
        "directory": (str(folder / "directory.yaml"), "directory.yaml"),
        "non_utf8": (str(folder / "non_utf8.yaml"), "non_utf8.yaml"),
        "broken_yaml": (str(folder / "broken.yaml"), "broken.yaml"),
        "fifo": (str(folder / "fifo.yaml"), "fifo.yaml"),
        "unknown_id": (UNKNOWN_ID, UNKNOWN_ID),
        "control_chars": (CONTROL_CHARS, r"bad\x1b[31mred\x07\r\nline\u202etxt"),
    }


KINDS = ["missing", "directory", "non_utf8", "broken_yaml", "fifo", "unknown_id", "control_chars"]
# `runs list` of a well-formed experiment id without runs lists nothing: one line, exit 0
EMPTY_IS_AN_ANSWER = {("runs list", "unknown_id")}


def tree(root: Path) -> tuple[set[str], dict[str, bytes]]:
    """Every path under ``root`` (folders and FIFOs too) and every file's bytes."""
    return {str(p.relative_to(root)) for p in root.rglob("*")}, snapshot(root)


def assert_one_line(said: Said, names: str) -> None:
    """Exit 2: argparse's usage then its one error line. Otherwise one line (and validate's tally)."""
    lines = said.text.splitlines()
    if said.code == 2:
        assert re.match(r"crucible[\w ]*: error: ", lines[-1]), said.text
        assert all(ln.startswith(("usage:", " ")) for ln in lines[:-1]), said.text
        assert names in lines[-1], said.text
        return
    said_lines = [ln for ln in lines if not TALLY.fullmatch(ln)]
    assert len(said_lines) == 1 and names in said_lines[0], said.text


def test_the_parser_is_enumerated() -> None:
    """The enumeration reaches nested subcommands, so the cases below cover all of them."""
    assert {"validate", "run", "plan", "diff", "schema", "runs show", "accept"} <= set(COMMANDS)
    assert "runs" not in COMMANDS  # a group is not a command: its leaves are


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_subcommand_answers_hostile_input_in_one_line(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: str, kind: str
) -> None:
    value, names = hostile_inputs(tmp_path)[kind]
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    args = [value] * len(positionals(COMMANDS[command])) or [value]  # none: an unexpected one
    before = tree(tmp_path)
    said = cli(*command.split(), *args)
    expected = {0} if (command, kind) in EMPTY_IS_AN_ANSWER else {1, 2}
    assert said.code in expected, said.text
    assert_one_line(said, names)
    assert not RAW_CONTROL.search(said.text), repr(said.text)
    assert tree(tmp_path) == before


def _stage_file(tmp_path: Path, cls: str) -> Path:
    path = tmp_path / "e.yaml"
    path.write_text(
        f"id: e\npipeline:\n  - name: s\n    module: tests.hostile.hostile_modules:{cls}\n"
    )
    return path


def test_an_exception_in_a_stage_is_that_stages_failure_not_a_bug(
    cli: Cli, tmp_path: Path, artifacts_dir: Path
) -> None:
    """Attack A8, decided: a KeyError raised by a stage's code fails that stage (exit 1, the
    record failed with the traceback kept in it); exit 70 is for a bug in crucible_dagster
    itself, outside stage code."""
    said = cli("run", _stage_file(tmp_path, "RaisesKeyError"))
    assert said.code == 1, said.text
    assert "failed at stage 's' (KeyError, reason exception): 'missing_column'" in said.err
    assert "bug" not in said.text and "Traceback" not in said.text
    (manifest,) = artifacts_dir.glob("e/*/manifest.json")
    record = json.loads(manifest.read_text())
    assert record["status"] == "failed" and record["failure"]["error_type"] == "KeyError"
    assert record["failure"]["traceback"].startswith("Traceback (most recent call last)")


def test_a_stage_failures_log_line_stays_one_line(
    cli: Cli, tmp_path: Path, artifacts_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Attack A9: the WARNING stage_failed line escaped ESC but kept the message's newline, so
    it became two terminal lines; the log record is now one line, breaks shown as escapes."""
    said = cli("run", _stage_file(tmp_path, "RaisesMultiline"))
    assert said.code == 1, said.text
    (logged,) = [r.getMessage() for r in caplog.records if "stage_failed" in r.getMessage()]
    assert "message=bad \x1b[2J value\\nsecond line, duration_ms=" in logged, logged
    assert "\n" not in logged
    assert not any(line.startswith("second line") for line in said.text.splitlines())


@pytest.mark.parametrize("status", ["bogus", "complete", "failure"])
def test_runs_list_takes_only_a_known_status(cli: Cli, tmp_path: Path, status: str) -> None:
    """Attack A7: a typo such as ``--status complete`` printed "no runs of g1" and exit 0, as
    if the history were empty; it is a usage error naming the value and the choices."""
    said = cli("runs", "list", "g1", "--status", status)
    assert said.code == 2, said.text
    last = said.err.splitlines()[-1]
    assert f"argument --status: invalid choice: '{status}'" in last, last
    assert "completed" in last and "interrupted" in last and "Traceback" not in said.text


@pytest.mark.parametrize(
    ("flags", "names"),
    [
        (["stages", "--name", CONTROL_CHARS], r"bad\x1b[31mred\x07\r\nline"),
        (["run", "e.yaml", "--set", f"x{CONTROL_CHARS}=1"], r"xbad\x1b[31mred\x07\r\nline"),
        (["plan", "e.yaml", "--difference", "1", "--pilot", CONTROL_CHARS], r"\x1b[31mred"),
    ],
    ids=["stages_name", "run_set", "plan_pilot"],
)
def test_control_characters_in_an_option_are_escaped(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, flags: list[str], names: str
) -> None:
    monkeypatch.chdir(tmp_path)
    Path("e.yaml").write_text("id: e\npipeline: [{name: validate}]\n")
    before = tree(tmp_path)
    said = cli(*flags)
    assert said.code == 1, said.text
    assert_one_line(said, names)
    assert not RAW_CONTROL.search(said.text), repr(said.text)
    assert tree(tmp_path) == before


def test_control_characters_in_a_manifest_are_escaped(cli: Cli, tmp_path: Path) -> None:
    """A record read back (here a run's manifest) cannot drive the terminal either."""
    path = tmp_path / "e.yaml"
    path.write_text("id: e\npipeline: [{name: validate}]\n")
    assert cli("run", path, "--run-id", "r2").code == 0
    run_dir = tmp_path / "artifacts" / "e" / "r2"
    manifest = json.loads((run_dir / "manifest.json").read_text())
    manifest["orchestrator"] = "standalone\x1b]0;owned\x07\x1b[2J"
    (run_dir / "manifest.json").write_text(json.dumps(manifest))
    said = cli("runs", "list", "e")  # prints the field as it is (diff and runs show repr it)
    assert said.code == 0 and "standalone\\x1b]0;owned\\x07\\x1b[2J" in said.out, said.text
    assert not RAW_CONTROL.search(said.text), repr(said.text)


class DescribeFails(Stage):
    """A stage whose schema raises: an error no input explains, so the boundary calls it a bug."""

    name = "describe_fails"

    @classmethod
    def describe(cls) -> dict[str, Any]:
        raise TypeError("describe() broke")


class DescribeInterrupted(Stage):
    """Ctrl-C while the command works."""

    name = "describe_interrupted"

    @classmethod
    def describe(cls) -> dict[str, Any]:
        raise KeyboardInterrupt


def test_an_internal_error_is_one_line_saying_it_is_a_bug(cli: Cli) -> None:
    said = cli("stages", "--name", f"{__name__}:DescribeFails")
    assert said.code == EXIT_INTERNAL, said.text
    assert said.err.count("\n") == 1 and "internal error" in said.err, said.text
    assert "TypeError: describe() broke" in said.err and "--debug" in said.err, said.text


def test_debug_prints_the_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["--debug", "stages", "--name", f"{__name__}:DescribeFails"])
    err = capsys.readouterr().err
    assert code == EXIT_INTERNAL
    assert "Traceback" in err and "describe() broke" in err.splitlines()[-1], err


def test_ctrl_c_exits_130_with_one_line(cli: Cli) -> None:
    said = cli("stages", "--name", f"{__name__}:DescribeInterrupted")
    assert said.code == EXIT_INTERRUPTED and said.err == "crucible: interrupted\n", said.text


def constant_sweep(folder: Path) -> Path:
    path = folder / "const.yaml"
    path.write_text(
        "id: const\n"
        "pipeline:\n"
        "  - name: seed\n"
        "    module: crucible_dagster.contrib.examples:SeedMetrics\n"
        "    options: {metrics: {score: 0.5}}\n"
        "parameters: {a: [1, 2]}\n"
        "seeds: [1, 2]\n"
        "sweep: {metric: score}\n"
    )
    return path


@pytest.mark.slow
def test_a_constant_metric_sweep_summary_says_undefined(
    cli: Cli, tmp_path: Path, artifacts_dir: Path
) -> None:
    said = cli("run", constant_sweep(tmp_path), "--run-id", "s1")
    assert said.code == 0, said.text
    line = "variance of trial means: undefined (metric constant in every trial)"
    assert line in said.err.splitlines(), said.text
    report = (artifacts_dir / "const" / "s1" / "sweep.md").read_text()
    assert "undefined (metric constant in every trial)" in report
    assert json.loads((artifacts_dir / "const" / "s1" / "manifest.json").read_text())["status"] == (
        "completed"
    )


@pytest.mark.parametrize(
    ("effect", "reason"),
    [("1e-9", "too small to reach 80% power"), ("1e300", "not computable")],
    ids=["tiny", "huge"],
)
def test_plan_refuses_what_cannot_be_planned(
    cli: Cli, tmp_path: Path, effect: str, reason: str
) -> None:
    path = constant_sweep(tmp_path)
    said = cli("plan", path, "--effect-size", effect)
    assert said.code == 1, said.text
    assert_one_line(said, f"{path}: cannot be planned: ")
    assert reason in said.err and not re.search(r"\binf\b|\bnan\b", said.text), said.text


@pytest.fixture(scope="module")
def pilot(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real pilot sweep (two levels, three seeds) with seed-to-seed variation."""
    from crucible_dagster import Experiment
    from crucible_dagster.sweeps.standalone import run_sweep

    experiment = Experiment.model_validate(
        {
            "id": "pilot",
            "parameters": {"level": [0.8, 0.9]},
            "seeds": [1, 2, 3],
            "sweep": {"metric": "score"},
            "pipeline": [
                {
                    "name": "score",
                    "module": "tests.helpers:NoisyScore",
                    "options": {"level": "${params.level}"},
                }
            ],
        }
    )
    root = tmp_path_factory.mktemp("pilot")
    return Path(run_sweep(experiment, run_id="p1", artifacts=str(root)).run_dir)


def tampered(pilot: Path, folder: Path, sweep: Any) -> Path:
    """A copy of the pilot run whose manifest's metrics.sweep is ``sweep`` (unchanged if None)."""
    copy = folder / "p1"
    shutil.copytree(pilot, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    if sweep is not None:
        manifest["metrics"]["sweep"] = sweep
    (copy / "manifest.json").write_text(json.dumps(manifest))
    return copy


@pytest.mark.parametrize(
    ("sweep", "difference", "phrase"),
    [
        (None, "1e-12", "too small to reach"),
        ([1, 2], "1", "no 'configurations' found"),
        ({"configurations": [1, 2]}, "1", "expected metrics.sweep.configurations to map"),
        ({"configurations": {"a": 1, "b": 2}}, "1", "expected metrics.sweep.configurations"),
    ],
    ids=["tiny_difference", "sweep_not_a_mapping", "configurations_a_list", "summary_a_number"],
)
def test_plan_names_the_pilot_and_what_is_wrong(
    cli: Cli, tmp_path: Path, pilot: Path, sweep: Any, difference: str, phrase: str
) -> None:
    path = constant_sweep(tmp_path)
    run_dir = tampered(pilot, tmp_path, sweep)
    before = tree(tmp_path)
    said = cli("plan", path, "--difference", difference, "--pilot", run_dir)
    assert said.code == 1, said.text
    assert_one_line(said, f"{path}: cannot be planned: ")
    assert phrase in said.err and not re.search(r"\binf\b|\bnan\b", said.text), said.text
    assert tree(tmp_path) == before


def test_plan_with_a_pilot_still_plans(cli: Cli, tmp_path: Path, pilot: Path) -> None:
    """The refusals above are not a refusal of everything: a sound pilot gives a seed count."""
    said = cli("plan", constant_sweep(tmp_path), "--difference", "0.02", "--pilot", pilot)
    assert said.code == 0 and re.search(r"n = \d+ seeds", said.out), said.text


@pytest.mark.parametrize(
    ("command", "record"),
    [
        ("runs show", "manifest.json"),
        ("accept", "manifest.json"),
        ("runs compare", "manifest.json"),
        ("runs compare", "scores.parquet"),
    ],
)
def test_a_broken_record_under_a_run_is_one_line(
    cli: Cli, tmp_path: Path, artifacts_dir: Path, command: str, record: str
) -> None:
    """What `runs`/`accept` raise about a record (a ValueError) ends at the boundary as one line."""
    path = tmp_path / "e.yaml"
    path.write_text("id: e\npipeline: [{name: validate}]\n")
    for run_id in ("r1", "r2"):
        assert cli("run", path, "--run-id", run_id).code == 0
    broken = artifacts_dir / "e" / "r1" / record
    if record == "manifest.json":
        broken.write_text(broken.read_text()[:40])  # truncated
    else:
        broken.write_bytes(b"PAR1\x00\x1b[2J not parquet")
    before = tree(tmp_path)
    said = cli(*command.split(), *(["r1", "r2"] if command == "runs compare" else ["r1"]))
    assert said.code == 1, said.text
    assert_one_line(said, record)
    assert not RAW_CONTROL.search(said.text), repr(said.text)
    assert tree(tmp_path) == before


@pytest.mark.slow
@pytest.mark.parametrize("command", ["schema", "stages"])
def test_a_reader_that_left_is_not_an_error(tmp_path: Path, command: str) -> None:
    """`crucible schema | head`: stdout's reader is gone before the first write; exit 0, silent."""
    import subprocess
    import sys

    from tests.conftest import subprocess_env

    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        done = subprocess.run(
            [sys.executable, "-m", "crucible_dagster.cli", command],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            cwd=tmp_path,
            env=subprocess_env(),
            timeout=120,
        )
    finally:
        os.close(write_end)
    assert done.returncode == 0 and done.stderr == "", done.stderr
    assert list(tmp_path.iterdir()) == []
