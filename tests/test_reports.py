"""Reports in four formats, escaping, quality targets, crucible diff, and killed runs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from crucible_dagster import Experiment, run
from crucible_dagster.cli import main
from crucible_dagster.experiment.ir import QualityTarget
from crucible_dagster.experiment.loading import load_experiment
from crucible_dagster.quality.targets import evaluate_target
from tests.conftest import ROOT, subprocess_env

SCRIPT = "<script>document.title='pwned';document.body.setAttribute('data-pwned','1')</script>"


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    artifacts = tmp_path_factory.mktemp("demo_artifacts")
    experiment = load_experiment(ROOT / "experiments" / "classifier_comparison.yaml")
    result = run(experiment, run_id="demo", artifacts_root=str(artifacts))
    assert result.ok, result.failure
    return Path(result.run_dir or "")


@pytest.mark.slow
def test_demo_report_in_four_formats(demo_run: Path) -> None:
    names = sorted(p.name for p in demo_run.iterdir())
    for name in (
        "comparison.md",
        "comparison.json",
        "comparison.html",
        "comparison.csv",
        "forest_plot.svg",
        "distributions.svg",
        "manifest.json",
        "telemetry.jsonl",
        "trace.json",
    ):
        assert name in names
    markdown = (demo_run / "comparison.md").read_text()
    assert (
        "## Quality targets" in markdown
        and "## Comparisons" in markdown
        and "### Decision record" in markdown
    )
    assert "![forest plot](forest_plot.svg)" in markdown
    data = json.loads((demo_run / "comparison.json").read_text())
    assert data["metrics"]["bench"]["design"] == "blocked"
    assert {v["name"] for v in data["quality_targets"]} == {
        "logistic_accuracy",
        "logistic_not_worse_than_forest",
    }
    table = pd.read_csv(demo_run / "comparison.csv")
    assert {
        "group_a",
        "group_b",
        "test",
        "statistic",
        "p_value",
        "p_adjusted",
        "estimate",
        "ci_low",
        "ci_high",
        "effect_size",
        "n_a",
        "n_b",
        "power_note",
    } <= set(table.columns)
    assert len(table) == 6
    html = (demo_run / "comparison.html").read_text()
    assert html.count("<table") >= 5 and html.count('src="data:image/svg+xml;base64,') == 2
    assert "<script" not in html.lower()
    manifest = json.loads((demo_run / "manifest.json").read_text())
    assert manifest["status"] == "completed" and manifest["data_fingerprints"]["breast_cancer"]


def test_json_report_is_sanitized(tmp_path: Path) -> None:
    experiment = Experiment.model_validate(
        {
            "id": "nan",
            "pipeline": [
                {
                    "name": "seed",
                    "module": "crucible_dagster.contrib.examples:SeedMetrics",
                    "options": {"metrics": {"t": [1, 2]}},
                },
                {"name": "report"},
            ],
            "outputs": [{"name": "r", "formats": ["json"]}],
        }
    )
    assert run(
        experiment, assigns={"stuff": (1, float("nan"))}, run_id="r", artifacts_root=str(tmp_path)
    ).ok
    text = (tmp_path / "nan" / "r" / "r.json").read_text()
    # json.loads accepts NaN, Infinity and -Infinity by default; strict JSON has none of them
    json.loads(text, parse_constant=refuse_constant)


def refuse_constant(token: str) -> Any:
    """A parse_constant for json.loads: a NaN or Infinity token fails the test."""
    raise AssertionError(f"not strict JSON: the report holds {token}")


def hostile_experiment() -> Experiment:
    return Experiment.model_validate(
        {
            "id": "hostile",
            "description": f"desc {SCRIPT}",
            "pipeline": [
                {
                    "name": "seed",
                    "module": "crucible_dagster.contrib.examples:SeedMetrics",
                    "options": {"metrics": {f"metric{SCRIPT}": 1.5}},
                },
                {"name": "out", "module": "tests.helpers:AddOutput", "options": {"answer": SCRIPT}},
                {"name": "report"},
            ],
            "outputs": [{"name": "r", "formats": ["html", "markdown"]}],
        }
    )


def test_html_escapes_everything_from_data(tmp_path: Path) -> None:
    result = run(hostile_experiment(), run_id="r", artifacts_root=str(tmp_path))
    assert result.ok, result.failure
    html = (tmp_path / "hostile" / "r" / "r.html").read_text()
    assert "<script" not in html.lower()
    assert html.count("&lt;script&gt;") >= 3  # description, metric name, output value
    assert (
        "Content-Security-Policy" in html and "script-src" not in html
    )  # default-src 'none' forbids scripts


@pytest.mark.parametrize(
    ("target", "passed"),
    [
        ({"name": "acc", "metric": "cv.a.mean", "op": ">=", "value": 0.9}, True),
        ({"name": "acc", "metric": "cv.a.mean", "op": ">", "value": 0.95}, False),
        ({"name": "missing", "metric": "cv.z.mean", "value": 0.5}, False),
        (
            {
                "name": "sup",
                "kind": "superiority",
                "treatment": "a",
                "baseline": "b",
                "margin": 0.0,
            },
            True,
        ),
        (
            {
                "name": "sup",
                "kind": "superiority",
                "treatment": "a",
                "baseline": "b",
                "margin": 0.02,
            },
            False,
        ),
        ({"name": "sup_rev", "kind": "superiority", "treatment": "b", "baseline": "a"}, False),
        (
            {
                "name": "ni",
                "kind": "non_inferiority",
                "treatment": "b",
                "baseline": "a",
                "margin": 0.1,
            },
            True,
        ),
        ({"name": "none", "kind": "superiority", "treatment": "a", "baseline": "c"}, False),
        # CI [0.01, 0.09] (or [-0.09, -0.01] reversed) inside (-0.1, 0.1): equivalent
        (
            {"name": "eq", "kind": "equivalence", "treatment": "b", "baseline": "a", "margin": 0.1},
            True,
        ),
        (
            {
                "name": "eq",
                "kind": "equivalence",
                "treatment": "a",
                "baseline": "b",
                "margin": 0.05,
            },
            False,
        ),
    ],
)
def test_quality_target_verdicts(target: dict[str, Any], passed: bool) -> None:
    metrics = {
        "cv": {"a": {"mean": 0.95}},
        "bench": {
            "comparisons": [
                {
                    "group_a": "a",
                    "group_b": "b",
                    "estimate": 0.05,
                    "ci_low": 0.01,
                    "ci_high": 0.09,
                    "p_value": 0.01,
                    "test": "ttest",
                }
            ]
        },
    }
    verdict = evaluate_target(QualityTarget.model_validate(target), metrics)
    assert verdict.passed is passed, verdict.message
    if target.get("kind", "threshold") != "threshold" and target["baseline"] != "c":
        assert verdict.ci_low is not None and verdict.p_value == 0.01
        sign = 1 if target["treatment"] == "a" else -1
        assert verdict.estimate == pytest.approx(0.05 * sign)


def test_an_equivalence_target_needs_a_positive_margin() -> None:
    with pytest.raises(ValueError, match="margin above 0"):
        QualityTarget.model_validate(
            {"name": "eq", "kind": "equivalence", "treatment": "a", "baseline": "b"}
        )


def _targets_experiment(fail_run: bool) -> Experiment:
    return Experiment.model_validate(
        {
            "id": "targets",
            "pipeline": [
                {
                    "name": "seed",
                    "module": "crucible_dagster.contrib.examples:SeedMetrics",
                    "options": {"metrics": {"accuracy": 0.8}},
                },
                {"name": "report"},
            ],
            "outputs": [{"name": "r", "formats": ["markdown"]}],
            "quality_targets": [
                {"name": "soft", "metric": "accuracy", "value": 0.85, "severity": "warn"},
                {
                    "name": "hard",
                    "metric": "accuracy",
                    "value": 0.9,
                    "severity": "error",
                    "fail_run": fail_run,
                },
            ],
        }
    )


def test_error_target_fails_the_run_after_the_report(tmp_path: Path) -> None:
    soft = run(_targets_experiment(False), run_id="a", artifacts_root=str(tmp_path))
    assert soft.ok and [v["passed"] for v in soft.context.metrics["quality_targets"]] == [
        False,
        False,
    ]
    hard = run(_targets_experiment(True), run_id="b", artifacts_root=str(tmp_path))
    assert (
        hard.failure is not None
        and hard.failure.reason == "quality_target_failed"
        and "hard" in hard.failure.message
    )
    assert (tmp_path / "targets" / "b" / "r.md").exists()
    assert (
        json.loads((tmp_path / "targets" / "b" / "manifest.json").read_text())["status"] == "failed"
    )


def test_crucible_diff_shows_exactly_the_seed_and_metrics(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CRUCIBLE_ARTIFACTS_DIR", str(tmp_path))
    path = tmp_path / "seeded.yaml"
    path.write_text(
        "id: seeded\nseed: 42\npipeline:\n  - name: validate\n  - name: score\n"
        "    module: tests.helpers:NoisyScore\n    options: {level: 0.5}\n"
    )
    assert main(["run", str(path), "--run-id", "s42", "--json"]) == 0
    assert main(["run", str(path), "--run-id", "s43", "--seed", "43", "--json"]) == 0
    capsys.readouterr()
    runs = tmp_path / "seeded"
    assert main(["diff", str(runs / "s42"), str(runs / "s43")]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "seed: 42 -> 43"
    assert all(line.startswith("metrics.") for line in lines[1:])
    assert any(line.startswith("metrics.score:") for line in lines)
    assert main(["diff", str(runs / "s42"), str(runs / "s42")]) == 0


@pytest.mark.slow
def test_killed_run_leaves_nothing_that_looks_complete(tmp_path: Path) -> None:
    experiment_file = tmp_path / "slow.yaml"
    experiment_file.write_text(
        "id: slow\npipeline:\n  - name: validate\n  - name: nap\n    module: tests.helpers:Sleep\n"
        "    options: {seconds: 60}\n  - name: report\n"
        "outputs:\n  - name: r\n    formats: [markdown, json, html, csv]\n"
    )
    artifacts = tmp_path / "artifacts"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "crucible_dagster.cli",
            "run",
            str(experiment_file),
            "--run-id",
            "killed",
        ],
        cwd=ROOT,
        env=subprocess_env(CRUCIBLE_ARTIFACTS_DIR=str(artifacts)),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    telemetry = artifacts / "slow" / "killed" / "telemetry.jsonl"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (
        telemetry.exists() and '"stage": "nap"' in telemetry.read_text()
    ):
        time.sleep(0.1)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    run_dir = artifacts / "slow" / "killed"
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert (
        manifest["status"] == "running" and manifest["ended_at"] is None
    )  # says plainly it did not finish
    # The manifest is written at the start and the end; telemetry shows how far the run got.
    assert manifest["stages"]["nap"]["status"] == "pending"
    events = [json.loads(line) for line in telemetry.read_text().splitlines()]
    reached = [(e["event"], e.get("stage")) for e in events]
    assert ("stage_completed", "validate") in reached and ("stage_started", "nap") in reached
    assert ("stage_completed", "nap") not in reached
    assert not [
        p
        for p in run_dir.iterdir()
        if p.suffix in (".md", ".html", ".csv") or p.name in ("r.json", "trace.json")
    ]
