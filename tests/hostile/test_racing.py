"""Hostile family of the race: ``race.json`` read back to resume (a record we wrote earlier),
the ``sweep.racing`` settings, and the scores a race is fed."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from crucible_dagster.racing import state as state_module
from crucible_dagster.racing.race import Race, RaceError
from crucible_dagster.racing.settings import RacingSettings
from crucible_dagster.run_history.records import RecordError

CONFIGS = ["a", "b", "c"]
BLOCKS = [str(i) for i in range(40)]


def _evaluate(configs: Sequence[str], blocks: Sequence[str]) -> dict[str, list[float]]:
    means = {"a": 0.9, "b": 0.5, "c": 0.1}
    return {c: [means[c]] * len(blocks) for c in configs}


def _written(tmp_path: Path, rounds_before_stop: int = 2) -> Path:
    path = tmp_path / "race.json"
    race = Race(RacingSettings(first_look=2, round_size=2), CONFIGS, BLOCKS, state_path=path)
    for _ in range(rounds_before_stop):
        blocks = race.next_blocks()
        race.play_round(blocks, _evaluate(list(race.record.survivors), blocks))
    return path


def _resume(path: Path, **settings: Any) -> Race:
    return Race(
        RacingSettings(first_look=2, round_size=2, **settings), CONFIGS, BLOCKS, state_path=path
    )


def _edit(path: Path, change: Any) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def _one_line(exc: BaseException, *needles: str) -> None:
    text = str(exc)
    assert "\n" not in text and "Traceback" not in text
    for needle in needles:
        assert needle in text, (needle, text)


def test_truncated_record(tmp_path: Path) -> None:
    path = _written(tmp_path)
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(RecordError) as info:
        _resume(path)
    _one_line(info.value, str(path), "truncated")


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda d: d.update(schema_version=2), "schema_version"),
        (lambda d: d.update(method="hoeffding"), "method"),
        (lambda d: d.update(configs="a,b,c"), "configs"),
        (lambda d: d["scores"].update(a=["0.9"]), "scores.a.0"),
        (lambda d: d.update(evaluations=-1), "evaluations"),
        (lambda d: d.update(evaluations=True), "evaluations"),
        (lambda d: d.update(finished="no"), "finished"),
        (lambda d: d["rounds"][0].update(index=0), "rounds.0.index"),
        (lambda d: d.update(survivors=["a", "zz"]), "survivors"),
        (lambda d: d["rounds"].reverse(), "rounds"),
        (lambda d: d["scores"].update(a=[0.5] * 99), "scores.a"),
        (lambda d: d.update(configs=["a", "a", "c"]), "configs"),
        (lambda d: d.update(extra_key=1), "extra_key"),
        (lambda d: d.update(finish_reason="x" * 5000), "finish_reason"),
    ],
)
def test_each_field_of_the_wrong_type_or_shape(tmp_path: Path, change: Any, field: str) -> None:
    path = _written(tmp_path)
    _edit(path, change)
    with pytest.raises(RecordError) as info:
        _resume(path)
    _one_line(info.value, str(path), field)


def test_a_record_of_another_race(tmp_path: Path) -> None:
    path = _written(tmp_path)
    with pytest.raises(RaceError) as info:
        Race(RacingSettings(first_look=2, round_size=2), ["a", "b", "d"], BLOCKS, state_path=path)
    _one_line(info.value, str(path), "configs", "another race")
    with pytest.raises(RaceError) as info:
        _resume(path, alpha=0.01)
    _one_line(info.value, "settings")


def test_control_characters_in_an_id_are_escaped(tmp_path: Path) -> None:
    path = _written(tmp_path)
    _edit(path, lambda d: d.update(survivors=["a", "\x1b[31mred\n"]))
    with pytest.raises(RecordError) as info:
        _resume(path)
    assert "\x1b" not in str(info.value) and "\n" not in str(info.value)


def test_not_a_regular_file_symlink_and_size_cap(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = _written(tmp_path)
    link = tmp_path / "link" / "race.json"
    link.parent.mkdir()
    link.symlink_to(real)
    with pytest.raises(RecordError) as info:
        _resume(link)
    _one_line(info.value, "symlink")

    folder = tmp_path / "dir" / "race.json"
    folder.mkdir(parents=True)
    with pytest.raises(RecordError) as info:
        _resume(folder)
    _one_line(info.value, "regular file")

    fifo = tmp_path / "fifo.json"
    os.mkfifo(fifo)
    with pytest.raises(RecordError) as info:
        _resume(fifo)
    _one_line(info.value, "regular file")

    monkeypatch.setattr(state_module, "MAX_RACE_BYTES", 100)
    with pytest.raises(RecordError) as info:
        _resume(real)
    _one_line(info.value, "at most 100 bytes")


def test_not_utf8_and_not_an_object(tmp_path: Path) -> None:
    path = _written(tmp_path)
    path.write_bytes(b"\xff\xfe{}")
    with pytest.raises(RecordError) as info:
        _resume(path)
    _one_line(info.value, "UTF-8")
    path.write_text("[1, 2]")
    with pytest.raises(RecordError) as info:
        _resume(path)
    _one_line(info.value, "a JSON object")


def test_a_resumed_race_writes_nothing_elsewhere(tmp_path: Path) -> None:
    path = _written(tmp_path)
    before = sorted(p.name for p in tmp_path.iterdir())
    _resume(path).run(_evaluate)
    assert sorted(p.name for p in tmp_path.iterdir()) == before


@pytest.mark.parametrize(
    ("settings", "field"),
    [
        ({"alpha": 0}, "alpha"),
        ({"alpha": 1}, "alpha"),
        ({"alpha": 1.5}, "alpha"),
        ({"alpha": True}, "alpha"),
        ({"alpha": float("nan")}, "alpha"),
        ({"budget": 0}, "budget"),
        ({"budget": -5}, "budget"),
        ({"first_look": True}, "first_look"),
        ({"first_look": 0}, "first_look"),
        ({"round_size": 2.5}, "round_size"),
        ({"max_blocks": 0}, "max_blocks"),
        ({"min_survivors": 0}, "min_survivors"),
        ({"method": "hoeffding"}, "method"),
        ({"block": "rows"}, "block"),
        ({"score_range": [1, 0]}, "low < high"),
        ({"score_range": [0, float("inf")]}, "score_range"),
        ({"method": "frace", "first_look": 1}, "frace"),
        ({"first_look": 10, "max_blocks": 5}, "before its first test"),
        ({"early_stopping": True}, "early_stopping"),
    ],
)
def test_settings_refused_with_the_field(settings: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        RacingSettings.model_validate(settings)
    assert field in str(info.value)


def test_race_report_escapes_configuration_ids() -> None:
    from crucible_dagster.reports.race_section import race_html, race_markdown

    evil = "=cmd|' /C calc'!A0 <script>x</script> [l](javascript:x)"
    race = {
        "method": "sequential",
        "alpha": 0.05,
        "evaluations": 3,
        "grid_evaluations": 4,
        "share_of_grid": 0.75,
        "survivors": ["a"],
        "finish_reason": "done",
        "rounds": [
            {
                "index": 1,
                "survivors": ["a", evil],
                "dropped": [evil],
                "evidence": [{"config": evil, "p_adjusted": 0.01}],
            }
        ],
    }
    markdown = "\n".join(race_markdown(race))
    assert "<script>" not in markdown and "](javascript:" not in markdown
    assert "<script>" not in race_html(race)


# --- issue 25 leftovers: a directory where a record belongs, new settings, data blocks ---------


@pytest.mark.parametrize("reader", ["read_bytes", "read_manifest", "read_race"])
def test_a_directory_where_a_record_belongs_is_a_located_record_error(
    tmp_path: Path, reader: str
) -> None:
    """``read_bytes`` once let ``os.fdopen`` raise a bare IsADirectoryError: every reader over
    it now says which file, that a regular file was expected and that a directory was found."""
    from crucible_dagster.run_history import records

    folder = tmp_path / "manifest.json"
    folder.mkdir()
    with pytest.raises(RecordError) as info:
        if reader == "read_bytes":
            records.read_bytes(folder, 100, "a record")
        elif reader == "read_manifest":
            records.read_run(tmp_path)
        else:
            state_module.read_race(folder)
    _one_line(info.value, str(folder), "regular file", "a directory")


def test_an_older_record_without_cost_still_resumes(tmp_path: Path) -> None:
    path = _written(tmp_path)
    _edit(path, lambda d: [d.pop("cost"), *(r.pop("cost") for r in d["rounds"])])
    race = _resume(path)
    assert race.record.cost == 0.0 and len(race.record.rounds) == 2


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda d: d.update(cost=-1.0), "cost"),
        (lambda d: d.update(cost="0.5"), "cost"),
        (lambda d: d["rounds"][0].update(cost=float("inf")), "rounds.0.cost"),
        (lambda d: d["rounds"][1].update(cost=True), "rounds.1.cost"),
        (lambda d: d.update(round_start_cost=-0.5), "round_start_cost"),
        (lambda d: d.update(round_planned_in=5), "round_planned_in"),
        (lambda d: d.update(round_planned_in="r" * 600), "round_planned_in"),
    ],
)
def test_a_cost_of_the_wrong_kind(tmp_path: Path, change: Any, field: str) -> None:
    path = _written(tmp_path)
    text = json.loads(path.read_text())
    change(text)
    path.write_text(json.dumps(text).replace("Infinity", "1e999"))
    with pytest.raises(RecordError) as info:
        _resume(path)
    _one_line(info.value, str(path), field)


@pytest.mark.parametrize(
    ("budget", "field"),
    [
        (0, "evaluations"),
        ({"evaluations": 0}, "evaluations"),
        ({"cost": 0}, "cost"),
        ({"cost": -1.0}, "cost"),
        ({"cost": float("nan")}, "cost"),
        ({"evaluations": True}, "evaluations"),
        ({}, "set evaluations or cost"),
        ({"tokens": 5}, "tokens"),
        (True, "budget"),
        ("100", "budget"),
    ],
)
def test_race_budgets_of_zero_or_the_wrong_kind(budget: Any, field: str) -> None:
    with pytest.raises(ValidationError) as info:
        RacingSettings.model_validate({"budget": budget})
    assert field in str(info.value)


def test_a_constant_metric_drops_nobody_and_says_why() -> None:
    """Every configuration scores the same on every block: no test can tell them apart, both
    methods keep everyone, and the look says the metric looks constant."""
    for method in ("sequential", "frace"):
        race = Race(RacingSettings(method=method, first_look=4, round_size=4), CONFIGS, BLOCKS)
        result = race.run(lambda configs, blocks: {c: [0.5] * len(blocks) for c in configs})
        assert result.survivors == CONFIGS, method
        assert all("constant metric" in r.look["note"] for r in result.record.rounds), method
        assert result.record.finish_reason == f"all {len(BLOCKS)} blocks raced"


@pytest.mark.parametrize(
    "space",
    [
        {"parameters": {}},
        {"parameters": {"level": []}},
        {"parameters": {"level": [0.5]}},
        {"parameters": {"level": "0.5,0.9"}},
    ],
)
def test_bad_spaces_are_refused_or_leave_nothing_to_race(
    space: dict[str, Any], tmp_path: Path
) -> None:
    """A space with no configuration is refused at validate; a single configuration (a text
    where a list belongs is one value) is a race already over (nothing to drop), never an error
    mid-run."""
    from crucible_dagster import Experiment
    from crucible_dagster.sweeps.standalone import run_sweep
    from tests.test_racing_sweep import RACED

    data = {**RACED, **space, "seeds": [1, 2, 3]}
    try:
        experiment = Experiment.model_validate(data)
    except ValidationError as exc:
        assert "parameters" in str(exc)
        return
    result = run_sweep(experiment, run_id="one", artifacts=str(tmp_path))
    race = result.comparison["race"]
    assert race["evaluations"] == 0 and "nothing to race" in race["finish_reason"]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("tamper", "found"),
    [
        (lambda p: p.write_text('{"schema_version": 1}'), "ids_malformed"),
        (lambda p: p.write_text("\xff not json"), "expected the JSON ids record"),
        (
            lambda p: p.write_text(p.read_text().replace('"sums"', '"other"')),
            "recorded for dataset 'other'",
        ),
        (lambda p: p.write_text(p.read_text().replace('"q', '"zz')), "not in this dataset"),
    ],
)
def test_a_round_ids_file_changed_before_its_trials_run_fails_them_by_name(
    tmp_path: Path, tamper: Any, found: str
) -> None:
    """The round's sample ids cross from the planning step to the trials' steps as a file in
    the run directory: changed in between, each trial fails at its dataset naming the file and
    the problem, and the round is never scored on samples it did not plan."""
    from crucible_dagster.contrib.llm_server import llm_server
    from crucible_dagster.runtime.driver import Run
    from crucible_dagster.sweeps.grid import expand_grid
    from crucible_dagster.sweeps.race_steps import plan_round, planned_experiment
    from crucible_dagster.sweeps.running import run_trials
    from tests.test_racing_data import answer, raced_llm, sums_file

    data_file = sums_file(tmp_path)
    with llm_server() as (url, server):
        server.answer = answer
        experiment = raced_llm(url, data_file, {"block": "samples", "first_look": 4})
        trials = expand_grid(experiment)
        sweep = Run.at(str(tmp_path / "runs"), experiment, run_id="r", steps=[], trials=[])
        planned = plan_round(experiment, trials, sweep)
        assert planned.ids_file is not None and len(planned.trials) == 3
        tamper(Path(planned.ids_file))
        payload = planned.payload(planned.trials)
        outcomes, failures = run_trials(
            planned_experiment(experiment, payload), planned.trials, sweep
        )
        assert sum(server.requests.values()) == 0  # nobody was asked anything
    assert len(failures) == 3 and all(o.status == "failed" for o in outcomes)
    message = str(outcomes[0].failure)
    assert planned.ids_file in message and found in message, message


@pytest.mark.slow
def test_a_sweep_ledger_damaged_mid_race_stops_it_asking_nobody_more(tmp_path: Path) -> None:
    """The race reads the sweep's budget ledger before each round: damaged after round 1, the
    race stops there saying the ledger cannot be read, nothing more is sent, and the sweep ends
    budget_exhausted (a budget it cannot read is never spent past)."""
    from crucible_dagster.contrib.llm_server import llm_server
    from crucible_dagster.runtime.run_record import read_manifest
    from crucible_dagster.sweeps.standalone import run_sweep
    from tests.test_racing_data import answer, raced_llm, sums_file

    data_file = sums_file(tmp_path)
    racing = {"block": "samples", "first_look": 4, "round_size": 4, "alpha": 0.001}
    base = tmp_path / "runs" / "raced_llm" / "r"
    sent: list[int] = []

    def damage(progress: int, total: int, outcome: Any) -> None:
        if progress == 3:  # round 1's three trials are done
            sent.append(sum(server.requests.values()))
            (base / "budget.json").write_text("{not json")

    with llm_server() as (url, server):
        server.answer = answer
        experiment = raced_llm(url, data_file, racing, budget={"max_requests": 1000})
        result = run_sweep(
            experiment, run_id="r", artifacts=str(tmp_path / "runs"), progress=damage
        )
        assert sum(server.requests.values()) == sent[0] == 12
    race = result.comparison["race"]
    assert len(race["rounds"]) == 1
    assert race["finish_reason"].startswith("the experiment's budget is spent")
    assert "budget.json" in race["finish_reason"] and "not a JSON ledger" in race["finish_reason"]
    assert read_manifest(base)["status"] == "budget_exhausted"


def test_a_planning_run_that_is_no_ancestor_reads_no_other_ledger(tmp_path: Path) -> None:
    """``round_planned_in`` is a run id matched against the run's own ancestors, never a path:
    a record naming another folder (or a path) counts only this run's spend."""
    from crucible_dagster.sweeps.race_blocks import SweepSpend
    from tests.test_racing_data import raced_llm, sums_file

    experiment = raced_llm(
        "http://127.0.0.1:9/v1",
        sums_file(tmp_path),
        {"block": "samples", "budget": {"cost": 1.0}},
        budget={"max_cost": 10.0},
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "budget.json").write_text(json.dumps({"experiment_id": "raced_llm", "cost": 9}))
    spend = SweepSpend(experiment, tmp_path / "this_run")
    for planned_in in ("elsewhere", str(elsewhere), "../elsewhere"):
        assert spend.since(0.5, planned_in, earlier=[tmp_path / "parent"]) == 0.0
    before = sorted(p.name for p in elsewhere.iterdir())
    assert before == ["budget.json"]
