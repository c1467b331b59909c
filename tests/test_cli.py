from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from crucible_dagster.cli import main
from tests.conftest import ROOT, subprocess_env


def test_run_json_prints_metrics(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", str(ROOT / "experiments/core_pipeline_demo.yaml"), "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["examples_loaded"] == 3
    assert metrics["data_checks"] == {
        "total": 3,
        "missing_required": 0,
        "required_fields": ["input", "output"],
    }
    assert metrics["guardrails"] == {"total": 3, "violations": 0}


def test_run_set_override_and_failure_exit_code(
    tmp_path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = ROOT / "experiments/core_pipeline_demo.yaml"
    code = main(
        [
            "run",
            str(path),
            "--set",
            "data_checks.required_fields=[input, label]",
            "--set",
            "data_checks.fail_fast=true",
        ]
    )
    err = capsys.readouterr().err
    assert code == 1
    assert "failed at stage 'data_checks'" in err and "data_checks_failed" in err
    assert "[3/5] data_checks" in err


def test_run_rejects_invalid_override(capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(
            [
                "run",
                str(ROOT / "experiments/core_pipeline_demo.yaml"),
                "--set",
                "validate.strict=maybe",
            ]
        )
        == 1
    )
    assert "strict: expected true or false" in capsys.readouterr().err


def test_stages_json_lists_name_module_schema(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["stages", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    names = {r["name"] for r in rows}
    assert {"validate", "data_checks", "guardrails", "report"} <= names
    row = next(r for r in rows if r["name"] == "data_checks")
    assert row["module"] == "crucible_dagster.stages.data_checks:DataChecksStage"
    assert row["schema"]["types"]["required_fields"] == ["list", "string"]


def test_stages_name_and_unknown(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["stages", "--name", "guardrails"]) == 0
    out = capsys.readouterr().out
    assert "Stage: guardrails" in out and "fail_on_violation" in out and "(default: false)" in out
    assert main(["stages", "--name", "nope"]) == 1


def test_schema_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema"]) == 0
    assert json.loads(capsys.readouterr().out)["title"] == "Crucible experiment"


@pytest.mark.slow
def test_console_script_runs() -> None:
    """The installed ``crucible`` entry point itself, next to the interpreter running the tests."""
    script = Path(sys.executable).parent / "crucible"
    assert script.exists(), f"the crucible console script is not installed beside {sys.executable}"
    proc = subprocess.run(
        [str(script), "--help"], capture_output=True, text=True, env=subprocess_env(), timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("usage: crucible")
    for command in ("validate", "run", "stages", "schema", "diff", "plan"):
        assert command in proc.stdout


def test_settings_without_effect_are_refused_where_they_are(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "unused.yaml"
    path.write_text(
        "id: unused_demo\n"
        "backend: {id: openai_gpt4}\n"
        "reliability:\n"
        "  ensemble: {strategy: majority}\n"
        "  stats: {alpha: 0.05, bootstrap_iterations: 500, effect_size_type: cohens_d}\n"
        "  guardrails: {content_moderation: true}\n"
        "pipeline:\n"
        "  - name: validate\n"
        "  - name: guardrails\n"
    )
    assert main(["validate", str(path)]) == 1
    out = capsys.readouterr().out
    assert f"{path}:2: backend: set, but no stage of this pipeline uses it" in out
    assert f"{path}:4: reliability.ensemble: set, but no stage of this pipeline uses it" in out
    assert f"{path}:5: reliability.stats.effect_size_type: not supported by crucible_dagster" in out
    assert f"{path}:6: reliability.guardrails.content_moderation: not supported: no offline" in out
    assert "bootstrap_iterations" not in out and "alpha" not in out  # the bench uses both
    assert main(["run", str(path)]) != 0  # nothing runs as if these had an effect
    with_stage = (
        path.read_text()
        .replace(", effect_size_type: cohens_d", "")
        .replace("content_moderation: true", "pii_detection: true")
        + "  - name: predict\n"
    )
    path.write_text(with_stage)
    assert main(["validate", str(path)]) == 1
    out = capsys.readouterr().out
    assert (
        f"{path}:2: backend.id: expected a backend (callable, noop, openai_compatible, sklearn"
        in out
    )
    assert "reliability.ensemble: set, but no stage" in out and "effect_size_type" not in out


def hedged_experiment(folder: Path, variants: str, more_reliability: str = "") -> Path:
    """An experiment with fixed-delay hedging (line 3), then ``more_reliability`` lines, and one
    predict stage with ``variants``."""
    path = folder / "hedged.yaml"
    path.write_text(
        "id: hedged\n"
        "reliability:\n"
        "  hedging: {strategy: fixed, delay_ms: 50}\n"
        f"{more_reliability}"
        "pipeline:\n"
        "  - name: predict\n"
        "    options:\n"
        f"      variants: {variants}\n"
    )
    return path


def test_hedging_without_a_backend_that_sends_requests_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = hedged_experiment(
        tmp_path, "{m: {id: sklearn}}", more_reliability="  stats: {bootstrap_iterations: 500}\n"
    )
    assert main(["validate", str(path)]) == 1
    assert (
        f"{path}:3: reliability.hedging: set, but no backend of a predict stage"
        in capsys.readouterr().out
    )
    path.write_text(
        path.read_text().replace(
            "{m: {id: sklearn}}", "{m: {id: openai_compatible, options: {model: x}}}"
        )
    )
    assert main(["validate", str(path)]) == 0


def test_dataset_options_are_checked_by_the_providers_model(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``dataset.options`` is the provider's: an unknown key is refused at its line, with the
    closest known option."""
    path = tmp_path / "data.yaml"
    path.write_text(
        "id: data\ndataset:\n  name: iris\n  options: {targt: x}\npipeline:\n  - name: validate\n"
    )
    assert main(["validate", str(path)]) == 1
    out = capsys.readouterr().out
    assert (
        f"{path}:4: dataset.options.targt: Extra inputs are not permitted; did you mean 'target'?"
        in out
    )


def test_malformed_variants_beside_hedging_are_reported_where_they_are(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = hedged_experiment(tmp_path, "{m: {options: {model: x}}}")
    assert main(["validate", str(path)]) == 1
    out = capsys.readouterr().out
    assert "cannot check this file" not in out  # the checks ran to the end
    assert f"{path}:7: pipeline[0].options.variants.m.id:" in out
    assert f"{path}:3: reliability.hedging: set, but no backend of a predict stage" in out
