"""Every malformed experiment file gets a clear ``PATH:LINE: FIELD: message`` error, never a traceback."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from crucible_dagster.cli import main
from tests.conftest import ROOT, subprocess_env

CORPUS = Path(__file__).parent / "malformed"
FILES = sorted(CORPUS.iterdir())
LINE = re.compile(
    r"^(?P<file>tests/malformed/[^:]+):(?P<line>\d+): (?P<field>\S+): (?P<message>.+)$"
)

# file -> (field, a phrase the message must contain)
EXPECTED = {
    "01_yaml_syntax.yaml": ("(root)", "invalid YAML"),
    "02_yaml_tab_indent.yaml": ("(root)", "invalid YAML"),
    "03_not_a_mapping.yaml": ("(root)", "expected a mapping"),
    "04_empty_file.yaml": ("(root)", "got an empty file"),
    "05_missing_id.yaml": ("id", "required"),
    "06_missing_pipeline.yaml": ("pipeline", "required"),
    "07_empty_pipeline.yaml": ("pipeline", "expected at least 1 item"),
    "08_misspelled_top_key.yaml": ("pipline", "did you mean 'pipeline'"),
    "09_misspelled_stage_key.yaml": ("pipeline[0].optoins", "did you mean 'options'"),
    "10_unknown_stage.yaml": ("pipeline[1].name", "'teleport' is not registered"),
    "11_hostile_os_system.yaml": ("pipeline[0].module", "not a crucible_dagster Stage subclass"),
    "12_hostile_builtins_eval.yaml": (
        "pipeline[0].module",
        "not a crucible_dagster Stage subclass",
    ),
    "13_hostile_path_syntax.yaml": ("pipeline[0].module", "is not a dotted path"),
    "14_missing_module.yaml": ("pipeline[0].module", "cannot find module"),
    "15_duplicate_stage_names.yaml": ("pipeline[2].name", "duplicate stage name 'report'"),
    "16_invalid_id_dash.yaml": ("id", "try 'my_experiment'"),
    "17_invalid_id_space.yaml": ("id", "valid Dagster name"),
    "18_invalid_stage_name.yaml": ("pipeline[0].name", "try 'load_data'"),
    "19_option_wrong_type.yaml": (
        "pipeline[0].options.strict",
        "expected true or false, got 'very'",
    ),
    "20_option_unknown_key.yaml": (
        "pipeline[0].options.required_feilds",
        "did you mean 'required_fields'",
    ),
    "21_option_list_item_type.yaml": (
        "pipeline[0].options.required_fields[1]",
        "expected a string, got 42",
    ),
    "22_stats_alpha_out_of_range.yaml": (
        "reliability.stats.alpha",
        "expected a number in (0, 1), got 1.5",
    ),
    "23_ensemble_bad_enum.yaml": (
        "reliability.ensemble.strategy",
        "expected one of: none, majority",
    ),
    "24_output_bad_format.yaml": ("outputs[0].formats[1]", "got 'pdf'"),
    "25_schedule_bad_timezone.yaml": ("schedule.timezone", "IANA timezone"),
    "26_seed_not_int.yaml": (
        "seed",
        "expected an integer between 0 and 4294967295, got 'forty-two'",
    ),
    "27_parameters_empty_axis.yaml": ("parameters", "non-empty list"),
    "28_quality_target_out_of_range.yaml": ("quality_targets", "between 0 and 1, got 1.5"),
    "29_pipeline_not_list.yaml": ("pipeline", "expected a list, got 'validate'"),
    "30_invalid_json.json": ("(root)", "invalid JSON"),
    "31_options_not_mapping.yaml": ("pipeline[0].options", "expected a mapping, got 'strict'"),
    "32_not_a_stage_class.yaml": (
        "pipeline[0].module",
        "names the standard library ('collections'), not a crucible_dagster Stage subclass",
    ),
    "33_guardrails_bad_option.yaml": (
        "pipeline[0].options.fail_on_violation",
        "expected true or false, got 'maybe'",
    ),
}


def test_corpus_is_complete() -> None:
    assert len(FILES) >= 25
    assert {f.name for f in FILES} == set(EXPECTED)


#: each file a case; a file with a schedule is checked by Dagster's own cron validator, so its
#: case imports Dagster and is marked integration (make test runs it, make test-fast does not)
CASES = [
    pytest.param(
        path,
        id=path.name,
        marks=[pytest.mark.integration] if "schedule:" in path.read_text(errors="replace") else [],
    )
    for path in FILES
]


@pytest.mark.parametrize("path", CASES)
def test_validate_reports_clear_error(
    path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(ROOT)
    assert main(["validate", str(path.relative_to(ROOT))]) == 1
    out = capsys.readouterr().out.strip().splitlines()
    assert out, "no problem printed"
    parsed = [LINE.match(line) for line in out]
    assert all(parsed), out
    field, phrase = EXPECTED[path.name]
    assert any(m and m["field"] == field and phrase in m["message"] for m in parsed), out
    assert all(m and m["file"].endswith(path.name) for m in parsed)


@pytest.mark.slow
def test_whole_corpus_in_a_subprocess_prints_no_traceback() -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "crucible_dagster.cli",
            "validate",
            "tests/malformed",
            "experiments",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=subprocess_env(),
        timeout=120,
    )
    assert proc.returncode == 1
    assert "Traceback" not in proc.stdout + proc.stderr
    assert (
        f"{len(list((ROOT / 'experiments').glob('*.yaml')))} valid, {len(FILES)} invalid"
        in proc.stderr
    )


@pytest.mark.integration  # the demo folder has a schedule: Dagster checks its cron
def test_good_files_exit_zero() -> None:
    assert main(["validate", str(ROOT / "experiments"), "-q"]) == 0
