"""Data drift (``reliability.drift``): each test against a published or hand-computed value,
the stage on a constructed shift and on a sample of the same distribution, the false alarm rate
over many seeds, and the settings' hostile family."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from crucible_dagster.drift.statistics import feature_drift, kind_of, psi
from tests.conftest import Cli


def test_ks_exact_p_values_by_counting_orderings() -> None:
    """Two samples of n that do not overlap: D = 1, and two of the C(2n, n) equally likely
    orderings are as extreme (all of one sample first, either way): p = 2 / C(2n, n)."""
    three = feature_drift("x", pd.Series([1, 2, 3]), pd.Series([4, 5, 6]), "numeric")
    assert three.statistic == 1.0 and three.p_value == pytest.approx(2 / 20)
    four = feature_drift("x", pd.Series([1, 2, 3, 4]), pd.Series([5, 6, 7, 8]), "numeric")
    assert four.p_value == pytest.approx(2 / 70)


def test_chi_squared_on_agrestis_party_identification_table() -> None:
    """R's ``chisq.test`` documentation (Agresti 2007, p. 39): gender by party, X-squared =
    30.07, df = 2, p-value = 2.954e-07."""
    counts = {"F": (762, 327, 468), "M": (484, 239, 477)}
    sides = [
        pd.Series([party for party, n in zip("DIR", counts[g], strict=True) for _ in range(n)])
        for g in ("F", "M")
    ]
    found = feature_drift("party", sides[0], sides[1], "categorical")
    assert found.test == "chi2"
    assert found.statistic == pytest.approx(30.07, abs=0.005)
    assert found.p_value == pytest.approx(2.954e-07, rel=1e-3)


def test_psi_by_hand() -> None:
    # (0.4 - 0.5) ln(0.4 / 0.5) + (0.6 - 0.5) ln(0.6 / 0.5) = 0.02231 + 0.01823
    assert psi(np.array([50, 50]), np.array([40, 60])) == pytest.approx(0.040546, abs=1e-6)
    assert psi(np.array([1, 1]), np.array([1, 1])) == 0.0


def test_what_cannot_be_tested_says_why() -> None:
    empty = feature_drift("x", pd.Series([np.nan, np.nan]), pd.Series([1.0]), "numeric")
    assert empty.p_value is None and empty.reason == "no value in the reference sample"
    assert empty.missing == 2
    single = feature_drift("c", pd.Series(["a"] * 3), pd.Series(["a"] * 3), "categorical")
    assert single.p_value is None and single.reason == "a single category in both samples"
    infinite = feature_drift("x", pd.Series([1.0, 2.0, np.inf]), pd.Series([1.0, 2, 3]), "numeric")
    assert infinite.p_value is None and infinite.reason == "an infinite value"


def test_kinds_from_the_values() -> None:
    assert kind_of(pd.Series([1.5, 2.0]), pd.Series([3])) == "numeric"
    assert kind_of(pd.Series([True, False]), pd.Series([True])) == "categorical"
    assert kind_of(pd.Series(["red", "blue"]), pd.Series(["red"])) == "categorical"
    assert kind_of(pd.Series(["the cat sat down", "a dog ran off"]), pd.Series(["x y z"])) == "text"


def _false_alarms(seeds: int, n: int = 150) -> float:
    """The share of seeds where three same-distribution features (numeric, categorical, text)
    showed drift in any feature, Holm-corrected at alpha 0.05."""
    from crucible_dagster.bench.multiple import adjust_p_values

    words = np.array(["alpha", "beta", "gamma", "delta", "omega", "sigma"])

    def sample(rng: np.random.Generator) -> pd.DataFrame:
        texts = [" ".join(rng.choice(words, size=rng.integers(3, 9))) for _ in range(n)]
        return pd.DataFrame(
            {"x": rng.normal(size=n), "c": rng.choice(list("abc"), size=n), "t": texts}
        )

    alarms = 0
    for seed in range(seeds):
        rng = np.random.default_rng(seed)
        old, new = sample(rng), sample(rng)
        found = [feature_drift(str(c), old[c], new[c], kind_of(old[c], new[c])) for c in old]
        adjusted = adjust_p_values([f.p_value for f in found if f.p_value is not None], "holm")
        alarms += min(adjusted) < 0.05
    return alarms / seeds


@pytest.mark.slow
def test_the_false_alarm_rate_stays_near_alpha() -> None:
    """400 seeds: with Holm's correction the chance of any false alarm is at most 0.05
    (binomial sd 0.011 at 400 seeds, so within 0.02 to 0.08)."""
    rate = _false_alarms(400)
    assert 0.02 <= rate <= 0.08, rate


# --- the stage ------------------------------------------------------------------------------


def _csv(path: Path, frame: pd.DataFrame) -> Path:
    frame.to_csv(path, index_label="id")
    return path


def _samples(tmp_path: Path, shift: float, seed: int = 7) -> tuple[Path, Path]:
    rng = np.random.default_rng(seed)
    n = 300

    def frame(delta: float) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "age": rng.normal(40 + delta, 10, size=n).round(1),
                "plan": rng.choice(["basic", "pro"], size=n, p=[0.7, 0.3]),
                "label": rng.integers(0, 2, size=n),
            }
        )

    return _csv(tmp_path / "reference.csv", frame(0)), _csv(tmp_path / "current.csv", frame(shift))


def _experiment(reference: Path, current: Path, **drift: Any) -> Any:
    from crucible_dagster import Experiment

    def ref(path: Path) -> dict[str, Any]:
        return {"name": path.stem, "provider": "local",
                "options": {"path": str(path), "target": "label"}}  # fmt: skip

    return Experiment.model_validate(
        {
            "id": "drifted",
            "dataset": ref(current),
            "reliability": {"drift": {"reference": ref(reference), **drift}},
            "pipeline": [{"name": "drift"}],
        }
    )


def test_the_stage_finds_a_constructed_shift_and_only_it(
    tmp_path: Path, artifacts_dir: Path
) -> None:
    from crucible_dagster.runtime.runner import run

    reference, current = _samples(tmp_path, shift=5.0)  # half a standard deviation
    result = run(_experiment(reference, current))
    assert result.status == "completed", result.failure
    drift = result.context.metrics["drift"]
    assert drift["drifted"] == ["age"] and drift["features_drifted"] == 1
    assert set(drift["features"]) == {"age", "plan"}  # every shared column but the target
    age = drift["features"]["age"]
    assert age["test"] == "ks" and age["p_adjusted"] < 0.05 and age["psi"] > 0
    assert drift["features"]["plan"]["test"] == "chi2"
    assert drift["reference"]["name"] == "reference" and drift["current"]["rows"] == 300

    same_reference, same_current = _samples(tmp_path, shift=0.0)
    calm = run(_experiment(same_reference, same_current)).context.metrics["drift"]
    assert calm["drifted"] == [] and calm["features_tested"] == 2


def test_fail_on_drift_fails_the_stage_naming_the_features(
    tmp_path: Path, artifacts_dir: Path
) -> None:
    from crucible_dagster.runtime.runner import run

    reference, current = _samples(tmp_path, shift=5.0)
    result = run(_experiment(reference, current, fail_on_drift=True))
    assert result.status == "failed"
    assert "drift in 1 feature(s): age" in str(result.failure)


def test_a_feature_missing_from_one_side_is_named(tmp_path: Path, artifacts_dir: Path) -> None:
    from crucible_dagster.runtime.runner import run

    reference, current = _samples(tmp_path, shift=0.0)
    result = run(_experiment(reference, current, features=["age", "income"]))
    assert result.status == "failed"
    assert "reliability.drift.features: 'income' is not a column of the reference dataset" in str(
        result.failure
    )


def test_validate_names_a_missing_reference_file_at_its_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from crucible_dagster.cli import main

    _, current = _samples(tmp_path, shift=0.0)
    path = tmp_path / "drift.yaml"
    path.write_text(
        "id: drifted\n"
        f"dataset: {{name: current, provider: local, options: {{path: {current}}}}}\n"
        "reliability:\n"
        f"  drift: {{reference: {{name: ref, provider: local, options: {{path: {tmp_path}/nope.csv}}}}}}\n"
        "pipeline: [{name: drift}]\n"
    )
    assert main(["validate", str(path)]) == 1
    out = capsys.readouterr().out
    assert f"{path}:4: reliability.drift.reference.options.path: no such file" in out, out


# --- found by an outsider's attack ------------------------------------------------------------


def test_disjoint_categories_too_many_for_chi_squared_are_far_apart_by_psi() -> None:
    """100 000 categories on each side, none shared: no chi-squared test (under 5 values a
    category), and a PSI that says how far apart they are (it was 0 under a fixed floor)."""
    old = pd.Series([f"u{i}" for i in range(100_000)])
    new = pd.Series([f"v{i}" for i in range(100_000)])
    found = feature_drift("cat", old, new, "categorical")
    assert found.p_value is None and "too many for a chi-squared test" in (found.reason or "")
    assert found.psi is not None and found.psi > 0.5


def test_too_few_values_are_not_tested() -> None:
    found = feature_drift("x", pd.Series([1.0]), pd.Series([1.0, 2.0, 3.0]), "numeric")
    assert found.p_value is None
    assert found.reason == "1 value(s) in the reference sample, fewer than 3"


def test_a_relative_reference_is_read_beside_the_experiment_file(
    tmp_path: Path, artifacts_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As ``dataset`` is: the verdict does not depend on the folder crucible runs from."""
    from crucible_dagster.experiment.loading import load_experiment
    from crucible_dagster.runtime.runner import run

    folder = tmp_path / "exp"
    (folder / "data").mkdir(parents=True)
    _samples(folder / "data", shift=5.0)  # data/reference.csv and data/current.csv
    path = folder / "drift.yaml"
    path.write_text(
        "id: drifted\n"
        "dataset: {name: current, provider: local, options: {path: data/current.csv, target: label}}\n"
        "reliability:\n"
        "  drift:\n"
        "    reference: {name: ref, provider: local, options: {path: data/reference.csv, target: label}}\n"
        "pipeline: [{name: drift}]\n"
    )
    elsewhere = tmp_path / "elsewhere" / "data"
    elsewhere.mkdir(parents=True)
    # a reference of the same name there equal to the current data: read, it shows no drift
    (elsewhere / "reference.csv").write_bytes((folder / "data" / "current.csv").read_bytes())
    monkeypatch.chdir(elsewhere.parent)
    result = run(load_experiment(path))
    assert result.status == "completed", result.failure
    assert result.context.metrics["drift"]["drifted"] == ["age"]


def test_a_feature_gone_from_one_side_or_empty_is_counted_untestable(
    tmp_path: Path, artifacts_dir: Path
) -> None:
    from crucible_dagster.runtime.runner import run

    reference, current = _samples(tmp_path, shift=0.0)
    frame = pd.read_csv(current, index_col="id")
    frame["age"] = np.nan
    frame.drop(columns=["plan"]).assign(new_col=1.0).to_csv(current, index_label="id")
    drift = run(_experiment(reference, current)).context.metrics["drift"]
    assert drift["features_tested"] == 0 and drift["features_untestable"] == 3
    assert drift["untestable"] == {
        "age": "no value in the current sample",
        "plan": "absent from the current dataset",
        "new_col": "absent from the reference dataset",
    }


def test_a_kind_the_values_are_not_is_a_located_error(tmp_path: Path, artifacts_dir: Path) -> None:
    from crucible_dagster.runtime.runner import run

    reference, current = _samples(tmp_path, shift=0.0)
    result = run(_experiment(reference, current, kinds={"plan": "numeric"}))
    assert result.status == "failed"
    first = pd.read_csv(reference, index_col="id")["plan"].iloc[0]  # the first value refused
    assert (
        "reliability.drift.kinds.plan: numeric, but column 'plan' of the reference sample: "
        f"expected numbers, found {first!r}" in str(result.failure)
    )
    unknown = run(_experiment(reference, current, kinds={"label": "numeric"}))
    assert "reliability.drift.kinds: 'label' is not a compared feature" in str(unknown.failure)


# --- the current inputs from feedback events ------------------------------------------------


def _feedback_events(path: Path, shift: float, seed: int = 11, n: int = 300) -> Path:
    import json

    rng = np.random.default_rng(seed)
    rows = [
        {"id": f"e{i}", "feedback_value": True, "timestamp": "2026-12-02T10:00:00Z",
         "input": json.dumps({"age": round(float(rng.normal(40 + shift, 10)), 1),
                              "plan": str(rng.choice(["basic", "pro"], p=[0.7, 0.3]))})}
        for i in range(n)
    ]  # fmt: skip
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.mark.parametrize(("shift", "drifted"), [(5.0, ["age"]), (0.0, [])])
def test_current_inputs_from_the_feedback_events_of_the_run(
    tmp_path: Path, artifacts_dir: Path, shift: float, drifted: list[str]
) -> None:
    from crucible_dagster import Experiment
    from crucible_dagster.runtime.runner import run

    # the reference drawn as the events are, from another seed (to a file of its own)
    rng = np.random.default_rng(5)
    frame = pd.DataFrame({"age": rng.normal(40, 10, size=300).round(1),
                          "plan": rng.choice(["basic", "pro"], size=300, p=[0.7, 0.3]),
                          "label": rng.integers(0, 2, size=300)})  # fmt: skip
    reference = _csv(tmp_path / "reference.csv", frame)
    events = _feedback_events(tmp_path / "events.jsonl", shift)
    experiment = Experiment.model_validate(
        {
            "id": "fed",
            "reliability": {
                "feedback": {"source": str(events)},
                "drift": {"reference": {"name": "ref", "provider": "local",
                                        "options": {"path": str(reference), "target": "label"}},
                          "current_from": "feedback"},
            },
            "pipeline": [{"name": "feedback"}, {"name": "drift"}],
        }
    )  # fmt: skip
    result = run(experiment)
    assert result.status == "completed", result.failure
    found = result.context.metrics["drift"]
    assert found["drifted"] == drifted, found["features"]
    assert set(found["features"]) == {"age", "plan"}
    assert found["current"]["name"] == "feedback" and found["current"]["rows"] == 300


def test_current_from_feedback_needs_a_feedback_stage_before_drift(
    tmp_path: Path, cli: Cli
) -> None:
    path = tmp_path / "d.yaml"
    path.write_text(
        "id: d\nreliability:\n  feedback: {source: e.jsonl}\n"
        "  drift: {reference: {name: iris, provider: sklearn}, current_from: feedback}\n"
        "pipeline: [{name: drift}, {name: feedback}]\n"
    )
    said = cli("validate", str(path))
    assert said.code == 1
    assert (f"{path}:4: reliability.drift.current_from: feedback: expected a feedback stage "
            "before the drift stage") in said.text  # fmt: skip


def test_feedback_inputs_that_cannot_be_compared_say_why(tmp_path: Path) -> None:
    """Found by an outsider: 100 000 distinct keys built 100 000 features (340 MB written);
    mixed or missing inputs failed with "share no column"."""
    import json

    import pyarrow as pa
    import pyarrow.parquet as pq

    from crucible_dagster.drift.feedback_inputs import feedback_inputs
    from crucible_dagster.runtime.stage import StageError

    def table(inputs: list[Any]) -> Path:
        path = tmp_path / f"t{len(inputs)}.parquet"
        ids = [str(i) for i in range(len(inputs))]
        pq.write_table(pa.table({"id": ids, "input": pa.array(inputs, pa.string())}), path)
        return path

    many = table([json.dumps({f"k{i}_{j}": 1 for j in range(3)}) for i in range(400)])
    with pytest.raises(StageError, match="the inputs hold 1200 distinct keys, over 1000"):
        feedback_inputs(many)
    assert list(feedback_inputs(many, ["k1_0"]).examples.columns) == ["k1_0"]
    with pytest.raises(StageError, match="all JSON objects or all text, found both"):
        feedback_inputs(table(['{"a": 1}', "plain text", '{"a": 2}']))
    with pytest.raises(StageError, match="no kept feedback event has an input"):
        feedback_inputs(table([None, None]))


def test_control_characters_in_feature_names_are_escaped_in_the_markdown_report(
    tmp_path: Path, artifacts_dir: Path
) -> None:
    """Found by an outsider: an input key holding ESC reached the report's table cells raw."""
    import json

    from crucible_dagster import Experiment
    from crucible_dagster.reports.markdown import md_text
    from crucible_dagster.runtime.runner import run

    assert md_text("age\x1b[31m\x07") == "age\\x1b\\[31m\\x07"
    rng = np.random.default_rng(3)
    events = tmp_path / "events.jsonl"
    events.write_text("".join(json.dumps({"id": str(i), "feedback_value": True,
                              "input": {"x\x1b[31m": float(rng.normal())}}) + "\n"
                              for i in range(50)))  # fmt: skip
    reference = _csv(tmp_path / "ref.csv", pd.DataFrame({"x\x1b[31m": rng.normal(size=50)}))
    experiment = Experiment.model_validate(
        {"id": "esc", "reliability": {"feedback": {"source": str(events)}, "drift": {
            "reference": {"name": "ref", "provider": "local", "options": {"path": str(reference)}},
            "current_from": "feedback"}},
         "pipeline": [{"name": "feedback"}, {"name": "drift"}, {"name": "report"}],
         "outputs": [{"name": "summary", "formats": ["markdown"]}]}
    )  # fmt: skip
    result = run(experiment)
    assert result.status == "completed", result.failure
    report = (Path(str(result.run_dir)) / "summary.md").read_text()
    assert "\x1b" not in report and "x\\x1b" in report


def test_current_from_feedback_accepts_the_stages_by_their_dotted_paths(
    tmp_path: Path, cli: Cli
) -> None:
    """Review: the check found the feedback and drift stages by their short names only."""
    (tmp_path / "e.jsonl").write_text('{"id": "1", "feedback_value": true}\n')
    path = tmp_path / "d.yaml"
    path.write_text(
        "id: d\nreliability:\n  feedback: {source: e.jsonl}\n"
        "  drift: {reference: {name: iris, provider: sklearn}, current_from: feedback}\n"
        "pipeline:\n  - {name: ingest, module: 'crucible_dagster.feedback.stage:FeedbackStage'}\n"
        "  - {name: compare, module: 'crucible_dagster.drift.stage:DriftStage'}\n"
    )
    said = cli("validate", str(path))
    assert said.code == 0, said.text
