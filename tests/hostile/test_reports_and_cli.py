"""Families 4, 6 and 7: injection in reports, sweep edge cases, CLI misuse."""

from __future__ import annotations

import csv
import io
import json
import subprocess
from pathlib import Path

import pytest

from crucible_dagster import Experiment
from crucible_dagster.sweeps.grid import expand_grid
from tests.hostile.conftest import Cli, snapshot

# text a user can put into metric names and values, and what must never appear raw
HOSTILE_TEXT = [
    ("script_tag", "<script>alert(1)</script>", "<script>"),
    ("img_onerror", '<img src=x onerror="alert(1)">', "<img"),
    ("javascript_link", "[click](javascript:alert(1))", "](javascript:"),
    ("heading", "# Owned", "\n# Owned"),
    ("table_pipe", "a | b | c", "| b |"),
    ("html_comment", "<!-- hidden -->", "<!--"),
    ("backtick_fence", "```\nbreak out\n```", "\n```\nbreak out"),
    ("formula_equals", '=HYPERLINK("http://x")', None),
    ("formula_plus", "+cmd|' /C calc'!A0", None),
    ("formula_at", "@SUM(A1)", None),
    ("formula_minus", "-2+3+cmd|' /C calc'!A0", None),
    ("formula_tab", "\t=1+1", None),
]


def outside_code_fences(markdown: str) -> str:
    """The markdown a renderer interprets: fenced blocks show their content literally."""
    kept, fence = [], ""
    for line in markdown.split("\n"):
        ticks = len(line) - len(line.lstrip("`"))
        if not fence and ticks >= 3:
            fence = "`" * ticks
        elif fence and line.strip() == fence:
            fence = ""
        elif not fence:
            kept.append(line)
    return "\n".join(kept)


def _report(cli: Cli, tmp_path: Path, text: str) -> Path:
    experiment = {
        "id": "inject",
        "description": text,
        "pipeline": [
            {
                "name": "seed",
                "module": "crucible_dagster.contrib.examples:SeedMetrics",
                "options": {"metrics": {"label": text, "value": 1.0}},
            },
            {"name": "report"},
        ],
        "outputs": [{"name": "r", "formats": ["markdown", "csv", "html", "json"]}],
    }
    path = tmp_path / "e.json"
    path.write_text(json.dumps(experiment))
    said = cli("run", path, "--run-id", "inj")
    assert said.code == 0, said.text
    return tmp_path / "artifacts" / "inject" / "inj"


@pytest.mark.parametrize(
    ("text", "raw"), [c[1:] for c in HOSTILE_TEXT], ids=[c[0] for c in HOSTILE_TEXT]
)
def test_user_text_is_inert_in_every_format(
    cli: Cli, tmp_path: Path, text: str, raw: str | None
) -> None:
    run_dir = _report(cli, tmp_path, text)
    markdown = outside_code_fences((run_dir / "r.md").read_text())
    if raw is not None:
        assert raw not in markdown, markdown[:2000]
    if "<" in text:
        assert text not in (run_dir / "r.html").read_text()  # only ever escaped
    assert json.loads((run_dir / "r.json").read_text())["metrics"]["label"] == text
    for row in csv.reader(io.StringIO((run_dir / "r.csv").read_text())):
        for cell in row:
            assert not cell.startswith(("=", "+", "@", "\t", "\r")) or cell.startswith("'")
            if cell.startswith("-"):
                float(cell)  # a leading minus is only ever a number


def test_html_escapes_and_forbids_script(cli: Cli, tmp_path: Path) -> None:
    run_dir = _report(cli, tmp_path, "<script>alert(1)</script>")
    page = (run_dir / "r.html").read_text()
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert "default-src 'none'" in page


# (case id, parameter grid)
TRIAL_ID_CASES = [
    ("minus_one_and_one", {"a": [-1, 1]}),
    ("int_and_string", {"a": [1, "1"]}),
    ("none_and_string_none", {"a": [None, "None"]}),
    ("unicode", {"a": ["é", "e", "ê"]}),
    ("dots_and_underscores", {"a": ["0.1", "0_1", 0.1]}),
    ("empty_and_symbols", {"a": ["", "!", "?"]}),
    ("bool_and_int", {"a": [True, 1, "True"]}),
    ("two_axes", {"a": [1, -1], "b": ["x", "X"]}),
]


@pytest.mark.parametrize("grid", [c[1] for c in TRIAL_ID_CASES], ids=[c[0] for c in TRIAL_ID_CASES])
def test_trial_ids_are_unique_and_no_trial_is_dropped(grid: dict[str, list[object]]) -> None:
    experiment = Experiment.model_validate(
        {"id": "g", "pipeline": [{"name": "validate"}], "parameters": grid, "seeds": [1, 2]}
    )
    trials = expand_grid(experiment)
    expected = 2
    for values in grid.values():
        expected *= len(values)
    assert len(trials) == expected
    assert len({t.trial_id for t in trials}) == expected
    assert all(t.trial_id.replace("_", "").isalnum() for t in trials)
    assert len({t.config_id for t in trials}) == expected // 2


@pytest.mark.slow
def test_a_metric_identical_in_every_trial_is_explained(cli: Cli, tmp_path: Path) -> None:
    path = tmp_path / "const.json"
    path.write_text(
        json.dumps(
            {
                "id": "const",
                "pipeline": [
                    {
                        "name": "seed",
                        "module": "crucible_dagster.contrib.examples:SeedMetrics",
                        "options": {"metrics": {"score": 0.5}},
                    }
                ],
                "parameters": {"a": [1, 2, 3]},
                "seeds": [1, 2, 3],
                "sweep": {"metric": "score"},
            }
        )
    )
    said = cli("run", path, "--json")
    assert said.code == 0, said.text
    comparison = json.loads(said.out)
    assert comparison["failed_trials"] == []
    assert "could not tell them apart" in comparison["best"]["statement"]
    assert comparison["comparison"]["omnibus"][0]["p_value"] is None


# (case id, extra CLI args after `run FILE`, expected exit code, phrase on stderr)
CLI_CASES = [
    (
        "set_unparsable",
        ["--set", "validate.strict=[unclosed"],
        1,
        "--set 'validate.strict=[unclosed'",
    ),
    ("set_python_tag", ["--set", "validate.strict=!!python/name:os.system"], 1, "not plain YAML"),
    ("set_set_tag", ["--set", "validate.strict=!!set {a}"], 1, "not plain YAML"),
    ("set_no_equals", ["--set", "validate.strict"], 1, "--set expects STAGE.OPTION=VALUE"),
    ("set_no_option", ["--set", "validate=true"], 1, "--set expects STAGE.OPTION=VALUE"),
    ("set_unknown_stage", ["--set", "nope.x=1"], 1, "--set names unknown stage"),
    ("set_bad_value", ["--set", "validate.strict=very"], 1, "expected true or false"),
    ("set_alias_bomb", ["--set", "validate.strict=&a [*a]"], 1, "not plain YAML"),
    ("seed_negative", ["--seed", "-5"], 2, "argument --seed"),
    ("seed_text", ["--seed", "abc"], 2, "argument --seed"),
    ("seed_too_large", ["--seed", str(2**32)], 2, "argument --seed"),
    ("validate_mode_unknown", ["--validate-options", "maybe"], 2, "--validate-options"),
]


@pytest.mark.parametrize(
    ("extra", "code", "phrase"), [c[1:] for c in CLI_CASES], ids=[c[0] for c in CLI_CASES]
)
def test_run_flags_are_checked(
    cli: Cli, tmp_path: Path, extra: list[str], code: int, phrase: str
) -> None:
    path = tmp_path / "e.yaml"
    path.write_text("id: e\npipeline: [{name: validate}]\n")
    said = cli("run", path, *extra)
    assert said.code == code and phrase in said.err, said.text


# (case id, plan flags, phrase)
PLAN_CASES = [
    ("effect_zero", ["--effect-size", "0"], "argument --effect-size: expected a number > 0"),
    ("effect_negative", ["--effect-size", "-1"], "argument --effect-size"),
    ("effect_nan", ["--effect-size", "nan"], "expected a finite number"),
    ("alpha_zero", ["--effect-size", "0.5", "--alpha", "0"], "argument --alpha"),
    ("alpha_one", ["--effect-size", "0.5", "--alpha", "1"], "argument --alpha"),
    ("power_above_one", ["--effect-size", "0.5", "--power", "1.2"], "argument --power"),
    ("power_text", ["--effect-size", "0.5", "--power", "high"], "argument --power"),
]


@pytest.mark.parametrize(
    ("flags", "phrase"), [c[1:] for c in PLAN_CASES], ids=[c[0] for c in PLAN_CASES]
)
def test_plan_flags_are_checked(cli: Cli, flags: list[str], phrase: str) -> None:
    from tests.conftest import ROOT

    said = cli("plan", ROOT / "experiments" / "classifier_sweep.yaml", *flags)
    assert said.code == 2 and phrase in said.err, said.text


DIFF_TARGETS = ["missing", "text_file", "json_not_manifest", "json_list", "empty_dir", "binary"]


@pytest.mark.parametrize("target", DIFF_TARGETS)
def test_diff_refuses_what_is_not_a_run(cli: Cli, tmp_path: Path, target: str) -> None:
    path = tmp_path / target
    if target == "text_file":
        path.write_text("hello")
    elif target == "json_not_manifest":
        path.write_text('{"a": 1}')
    elif target == "json_list":
        path.write_text("[1, 2]")
    elif target == "empty_dir":
        path.mkdir()
    elif target == "binary":
        path.write_bytes(b"\xff\xfe\x00")
    said = cli("diff", path, path)
    assert said.code == 1 and "expected a run directory or its manifest.json" in said.err, said.text


def test_diff_names_a_stale_running_manifest(cli: Cli, tmp_path: Path, artifacts_dir: Path) -> None:
    path = tmp_path / "e.yaml"
    path.write_text("id: e\npipeline: [{name: validate}]\n")
    assert cli("run", path, "--run-id", "r1").code == 0
    manifest_path = artifacts_dir / "e" / "r1" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    gone = subprocess.Popen(["true"])
    gone.wait()  # a pid whose process has ended
    manifest.update(status="running", pid=gone.pid)
    manifest_path.write_text(json.dumps(manifest))
    said = cli("diff", manifest_path.parent, manifest_path.parent)
    assert "says 'running' but its process" in said.err


@pytest.mark.parametrize(
    ("case", "edit", "field"),
    [
        ("foreign_run_id", {"run_id": "other"}, "run_id"),
        ("foreign_experiment", {"experiment_id": "x"}, "experiment_id"),
        ("huge_pid", {"status": "running", "pid": 2**80}, "pid"),
        ("pid_zero", {"status": "running", "pid": 0}, "pid"),
        ("list_for_stages", {"stages": [1, 2]}, "stages"),
        ("escape_in_status", {"status": "\x1b[2Jdone"}, "status"),
    ],
)
def test_diff_reads_a_manifest_as_untrusted_record(
    cli: Cli, tmp_path: Path, artifacts_dir: Path, case: str, edit: dict, field: str
) -> None:
    path = tmp_path / "e.yaml"
    path.write_text("id: e\npipeline: [{name: validate}]\n")
    assert cli("run", path, "--run-id", "r1").code == 0
    manifest_path = artifacts_dir / "e" / "r1" / "manifest.json"
    manifest_path.write_text(json.dumps({**json.loads(manifest_path.read_text()), **edit}))
    before = snapshot(artifacts_dir)
    said = cli("diff", manifest_path, manifest_path.parent)
    assert said.code == 1, said.text
    lines = said.err.strip().splitlines()
    assert len(lines) == 1 and str(manifest_path) in lines[0] and field in lines[0], said.text
    assert "\x1b[" not in said.text  # an escape from the record never reaches the terminal
    assert snapshot(artifacts_dir) == before
