"""Run history, accepted baselines and the regression gate, standalone (issue 13)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from crucible_dagster import Experiment, history, run
from crucible_dagster.run_history import accept, accepted_run, list_runs
from crucible_dagster.run_history.baselines import AcceptError
from tests.conftest import Cli


def gated(**gate: Any) -> Experiment:
    return Experiment.model_validate(
        {
            "id": "gated",
            "seed": 5,
            "pipeline": [
                {"name": "scores", "module": "tests.helpers:UnitScores"},
                {"name": "bench", "options": {"data_source": "assigns"}},
                {"name": "report"},
            ],
            "outputs": [{"name": "summary", "formats": ["json"]}],
            "baseline": {
                "metric": "scores:model",
                "kind": "non_inferiority",
                "margin": 0.01,
                "fail_run": True,
                **gate,
            },
        }
    )


def with_scores(experiment: Experiment, **options: Any) -> Experiment:
    data = experiment.model_dump(mode="json", by_alias=True, exclude_defaults=True)
    data["pipeline"][0]["options"] = options
    return Experiment.model_validate(data)


def gate_of(artifacts: Path, run_id: str, experiment: str = "gated") -> dict[str, Any]:
    manifest = json.loads((artifacts / experiment / run_id / "manifest.json").read_text())
    return {"status": manifest["status"], **manifest["metrics"]["regression_gate"]}


def test_first_run_has_no_baseline_and_passes_visibly(artifacts_dir: Path) -> None:
    result = run(gated(), run_id="r1")
    assert result.ok
    gate = gate_of(artifacts_dir, "r1")
    assert gate["outcome"] == "no_baseline" and "no baseline yet" in gate["message"]
    verdict = next(
        v for v in result.context.metrics["quality_targets"] if v["name"] == "no_regression"
    )
    assert verdict["passed"] and verdict["message"].startswith("no_baseline")
    assert (artifacts_dir / "gated" / "r1" / "scores.parquet").is_file()


def test_accepted_baseline_then_a_regression_fails_then_a_clean_run_passes(
    artifacts_dir: Path,
) -> None:
    experiment = gated()
    assert run(experiment, run_id="r1").ok
    accept(artifacts_dir / "gated" / "r1", "the first good run")
    assert accepted_run(artifacts_dir / "gated") == "r1"
    degraded = run(with_scores(experiment, shift=-0.03, jitter_seed=2), run_id="r2")
    assert not degraded.ok and degraded.failure is not None
    assert degraded.failure.reason == "quality_target_failed"
    gate = gate_of(artifacts_dir, "r2")
    assert gate["status"] == "failed" and gate["outcome"] == "fail"
    assert gate["baseline_run_id"] == "r1" and gate["n_units"] == 20
    assert gate["estimate"] == pytest.approx(-0.03, abs=0.005)
    assert gate["ci_high"] < -0.01 and gate["p_value"] > 0.5  # cannot show it is within 0.01
    assert gate["test"] in ("paired_ttest", "wilcoxon") and gate["decisions"]
    clean = run(with_scores(experiment, jitter_seed=3), run_id="r3")
    assert clean.ok
    gate = gate_of(artifacts_dir, "r3")
    assert gate["outcome"] == "pass" and gate["p_value"] < 0.05
    assert gate["ci_low"] > -0.01
    rows = list_runs("gated")
    assert [(r.run_id, r.status, r.accepted) for r in rows] == [
        ("r1", "completed", True),
        ("r2", "failed", False),
        ("r3", "completed", False),
    ]
    assert rows[1].headline["no_regression"] == pytest.approx(
        gate_of(artifacts_dir, "r2")["estimate"]
    )
    frame = history("gated")
    assert list(frame["run_id"]) == ["r1", "r2", "r3"] and list(frame["accepted"]) == [
        True,
        False,
        False,
    ]
    assert set(frame["recorded_in"]) == {"run directory only"}  # no DAGSTER_HOME in this test


def test_identical_scores_pass_without_a_test(artifacts_dir: Path) -> None:
    experiment = gated(policy="last_completed")
    assert run(experiment, run_id="a").ok
    assert run(experiment, run_id="b").ok
    gate = gate_of(artifacts_dir, "b")
    assert gate["outcome"] == "pass" and gate["baseline_run_id"] == "a"
    assert gate["estimate"] == 0 and gate["ci_low"] == gate["ci_high"] == 0
    assert "every one of 20 units" in gate["message"]


def test_a_baseline_on_other_units_is_not_compared(artifacts_dir: Path) -> None:
    experiment = gated(policy="run", run="a")
    assert run(experiment, run_id="a").ok
    other_seed = Experiment.model_validate(
        {**experiment.model_dump(exclude_defaults=True), "seed": 6}
    )
    result = run(other_seed, run_id="b")
    gate = gate_of(artifacts_dir, "b")
    assert gate["outcome"] == "not_comparable" and "seed" in gate["message"]
    assert not result.ok  # fail_run: a gate that could not compare never passes silently
    fewer = run(with_scores(experiment, units=12), run_id="c")
    gate = gate_of(artifacts_dir, "c")
    assert gate["outcome"] == "not_comparable" and "different units" in gate["message"]
    assert not fewer.ok
    lenient = gated(policy="run", run="a", fail_run=False)
    assert run(with_scores(lenient, units=12), run_id="d").ok  # said in the check, not failed


@pytest.mark.parametrize(
    ("kind", "margin", "shift", "outcome"),
    [
        ("equivalence", 0.01, 0.0, "pass"),
        ("equivalence", 0.01, 0.03, "fail"),
        ("superiority", 0.01, 0.03, "pass"),
        ("superiority", 0.01, 0.0, "fail"),
    ],
)
def test_equivalence_and_superiority_gates(
    artifacts_dir: Path, kind: str, margin: float, shift: float, outcome: str
) -> None:
    experiment = gated(kind=kind, margin=margin, fail_run=False, policy="run", run="base")
    assert run(experiment, run_id="base").ok is True
    result = run(with_scores(experiment, shift=shift, jitter_seed=4), run_id="next")
    gate = gate_of(artifacts_dir, "next")
    assert gate["outcome"] == outcome, gate["message"]
    assert result.ok  # fail_run is off: the verdict is recorded, the run completes
    assert math.isfinite(gate["p_value"])


def test_accept_refuses_a_run_that_did_not_complete(artifacts_dir: Path) -> None:
    experiment = gated(policy="last_completed")
    assert run(experiment, run_id="a").ok
    assert not run(with_scores(experiment, shift=-0.05, jitter_seed=2), run_id="b").ok
    with pytest.raises(AcceptError, match="only a completed run"):
        accept(artifacts_dir / "gated" / "b")
    assert accepted_run(artifacts_dir / "gated") is None


@pytest.mark.slow
def test_the_runs_commands(cli: Cli, tmp_path: Path, artifacts_dir: Path) -> None:
    experiment = gated()
    assert run(experiment, run_id="r1").ok
    said = cli("accept", "r1", "--note", "good")
    assert said.code == 0 and "accepted baseline" in said.out
    assert not run(with_scores(experiment, shift=-0.03, jitter_seed=2), run_id="r2").ok
    listed = cli("runs", "list", "gated")
    lines = listed.out.strip().splitlines()
    assert listed.code == 0 and len(lines) == 2
    assert lines[0].startswith("r1") and "[accepted]" in lines[0] and "completed" in lines[0]
    assert lines[1].startswith("r2") and "failed" in lines[1] and "no_regression=" in lines[1]
    as_json = json.loads(cli("runs", "list", "gated", "--json").out)
    assert [r["run_id"] for r in as_json] == ["r1", "r2"]
    failed = json.loads(cli("runs", "list", "gated", "--json", "--status", "failed").out)
    assert [r["run_id"] for r in failed] == ["r2"]
    shown = json.loads(cli("runs", "show", "r2").out)
    assert shown["regression_gate"]["outcome"] == "fail" and shown["stages"]["report"] == "failed"
    compared = cli("runs", "compare", "r1", "r2")
    assert compared.code == 0 and "model: difference" in compared.out and "CI" in compared.out
    refused = cli("accept", "r2")
    assert refused.code == 1 and "only a completed run" in refused.err
    missing = cli("runs", "show", "nope")
    assert missing.code == 1 and "no run 'nope'" in missing.err


@pytest.mark.parametrize("run_id", ["*", "r?", "..", "../gated/r1", "[r]1"])
def test_a_run_id_is_never_a_pattern_or_a_path(cli: Cli, artifacts_dir: Path, run_id: str) -> None:
    assert run(gated(), run_id="r1").ok  # the one run a pattern could pick
    refused = cli("accept", run_id)
    assert refused.code == 1 and "no run" in refused.err
    assert accepted_run(artifacts_dir / "gated") is None


def test_runs_list_refuses_an_experiment_id_that_is_a_path(cli: Cli) -> None:
    said = cli("runs", "list", "../elsewhere")
    assert said.code == 2 and "experiment id" in said.err


@pytest.mark.slow
def test_the_classifier_scenario_with_label_noise(
    cli: Cli, tmp_path: Path, artifacts_dir: Path
) -> None:
    """The issue's scenario on the demo classifiers: noisy training labels are a regression."""
    path = tmp_path / "gated_cv.yaml"
    path.write_text(
        "id: gated_cv\nseed: 42\ndataset: {name: breast_cancer, provider: sklearn}\npipeline:\n"
        "  - {name: load_dataset, module: 'crucible_dagster.contrib.classifiers:LoadSklearnDataset'}\n"
        "  - name: cross_validate\n    module: 'crucible_dagster.contrib.classifiers:CrossValidate'\n"
        "    options:\n      folds: 10\n      models:\n"
        "        logistic_regression: {estimator: logistic_regression}\n"
        "        knn: {estimator: knn}\n"
        "  - {name: bench, options: {data_source: assigns}}\n  - {name: report}\n"
        "outputs: [{name: summary, formats: [json]}]\n"
        "baseline: {metric: 'scores:logistic_regression', margin: 0.01, fail_run: true}\n"
    )
    assert cli("run", path, "--run-id", "clean1").code == 0
    assert cli("accept", "clean1").code == 0
    noisy = cli("run", path, "--run-id", "noisy", "--set", "cross_validate.label_noise=0.3")
    assert noisy.code == 1 and "no_regression" in noisy.err
    gate = gate_of(artifacts_dir, "noisy", "gated_cv")
    assert gate["outcome"] == "fail" and gate["test"] == "corrected_resampled_ttest"
    assert gate["estimate"] < -0.01 and math.isfinite(gate["p_value"]) and gate["ci_high"] < 0
    assert cli("run", path, "--run-id", "clean2").code == 0
    assert gate_of(artifacts_dir, "clean2", "gated_cv")["outcome"] == "pass"
    lines = cli("runs", "list", "gated_cv").out.strip().splitlines()
    assert [line.split()[0] for line in lines] == ["clean1", "noisy", "clean2"]
    assert "[accepted]" in lines[0] and "failed" in lines[1]


@pytest.mark.slow
def test_the_html_report_plots_the_metric_over_the_history(artifacts_dir: Path) -> None:
    data = gated().model_dump(mode="json", by_alias=True, exclude_defaults=True)
    data["outputs"] = [{"name": "summary", "formats": ["html", "markdown"]}]
    experiment = Experiment.model_validate(data)
    assert run(experiment, run_id="r1").ok
    accept(artifacts_dir / "gated" / "r1")
    assert run(with_scores(experiment, jitter_seed=3), run_id="r2").ok
    svg = (artifacts_dir / "gated" / "r2" / "history.svg").read_text()
    assert "History: mean per run with 95% CI" in svg
    assert svg.count("<svg") == 1
    html = (artifacts_dir / "gated" / "r2" / "summary.html").read_text()
    assert "history" in html and "data:image/svg+xml" in html


def test_recheck_judges_a_recorded_run_against_the_baseline_accepted_since(
    artifacts_dir: Path,
) -> None:
    """A check executed alone (issue 26 item 1): the recorded run, the gate as it stands now."""
    from crucible_dagster.quality.gate import GATE_NAME
    from crucible_dagster.quality.recheck import recheck_run
    from crucible_dagster.run_history.records import RecordError

    experiment = gated()
    assert run(with_scores(experiment, shift=-0.03, jitter_seed=2), run_id="low").ok
    assert gate_of(artifacts_dir, "low")["outcome"] == "no_baseline"
    assert run(experiment, run_id="good").ok
    accept(artifacts_dir / "gated" / "good", "the better run")
    # "low" passed when it ran (nothing to compare); judged now, against "good", it regressed
    verdict = recheck_run(experiment, artifacts_dir / "gated" / "low")[GATE_NAME]
    assert not verdict.passed and verdict.message.startswith("fail")
    assert verdict.estimate == pytest.approx(-0.03, abs=0.005)
    assert gate_of(artifacts_dir, "low")["outcome"] == "no_baseline"  # the record is unchanged
    with pytest.raises(RecordError, match="another experiment's run"):
        recheck_run(experiment.model_copy(update={"id": "other"}), artifacts_dir / "gated" / "low")
