"""Hostile family "a record we wrote earlier and read back" (issue 22, section 1 and the gate
bullet of section 8): manifests, scores.parquet and baselines.jsonl as whoever had the folder
left them. Each case asserts the property: the exit code, one line naming the file and field,
no traceback (the ``cli`` fixture asserts it), nothing written outside its place, and every run
record in a terminal status.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from crucible_dagster import Experiment, run
from crucible_dagster.run_history import list_runs
from tests.hostile.conftest import Cli, snapshot

ESC = "\x1b"
BASE = {"metric": "scores:model", "kind": "non_inferiority", "margin": 0.01, "fail_run": True}


def gated(experiment_id: str = "gated", **gate: Any) -> Experiment:
    return Experiment.model_validate(
        {
            "id": experiment_id,
            "seed": 5,
            "pipeline": [
                {"name": "scores", "module": "tests.helpers:UnitScores"},
                {"name": "bench", "options": {"data_source": "assigns"}},
                {"name": "report"},
            ],
            "baseline": {**BASE, **gate},
        }
    )


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One real completed run (manifest and scores.parquet as the runner writes them)."""
    root = tmp_path_factory.mktemp("template")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CRUCIBLE_ARTIFACTS_DIR", str(root))
        assert run(gated(policy="last_completed"), run_id="t1").ok
    yield root / "gated" / "t1"


def plant(root: Path, template: Path, experiment: str, run_id: str, **changes: Any) -> Path:
    """A copy of the template run at ``<root>/<experiment>/<run_id>`` whose manifest names it,
    with ``changes`` applied to the manifest."""
    target = root / experiment / run_id
    shutil.copytree(template, target)
    manifest = json.loads((target / "manifest.json").read_text())
    manifest.update({"experiment_id": experiment, "run_id": run_id, **changes})
    (target / "manifest.json").write_text(json.dumps(manifest))
    return target


def status_of(root: Path, experiment: str, run_id: str) -> tuple[str, dict[str, Any]]:
    manifest = json.loads((root / experiment / run_id / "manifest.json").read_text())
    return manifest["status"], manifest["metrics"]["regression_gate"]


# ---------------------------------------------------------------- manifests read back

HOSTILE_MANIFESTS: dict[str, tuple[Any, str]] = {
    # name: (manifest text or changes, the field the one line must name)
    "truncated": ('{"schema_version": 1, "experiment_id": "gated", "run_id": "bad"', "file"),
    "empty": ("", "file"),
    "not_an_object": ("[1, 2, 3]", "record"),
    "huge_pid": ({"status": "running", "pid": 10**30}, "pid"),
    "pid_zero": ({"status": "running", "pid": 0}, "pid"),
    "list_for_mapping": ({"stages": ["a", "b"]}, "stages"),
    "metrics_a_string": ({"metrics": "x" * 100}, "metrics"),
    "int_timestamp": ({"started_at": 1_700_000_000}, "started_at"),
    "naive_timestamp": ({"started_at": "2026-01-01T00:00:00"}, "started_at"),
    "unknown_status": ({"status": "done"}, "status"),
    "bool_seed": ({"seed": True}, "seed"),
    "run_id_of_another_folder": ({"run_id": "t1"}, "run_id"),
    "another_experiment": ({"experiment_id": "other"}, "experiment_id"),
    "absurd_run_id": ({"run_id": "r" * 10_000}, "run_id"),
    "int_of_5000_digits": ('{"schema_version": ' + "9" * 5000 + "}", "file"),
    "duplicate_keys": ('{"run_id": "bad", "run_id": "bad"}', "file"),
}


def _spoil(root: Path, template: Path, spoiled: Any) -> Path:
    bad = plant(root, template, "gated", "bad")
    if isinstance(spoiled, str):
        (bad / "manifest.json").write_text(spoiled)
    else:
        manifest = json.loads((bad / "manifest.json").read_text())
        (bad / "manifest.json").write_text(json.dumps({**manifest, **spoiled}))
    return bad


@pytest.mark.parametrize("case", sorted(HOSTILE_MANIFESTS))
def test_runs_list_lists_an_unreadable_run_with_its_reason(
    cli: Cli, artifacts_dir: Path, template: Path, case: str
) -> None:
    plant(artifacts_dir, template, "gated", "good")
    spoiled, field = HOSTILE_MANIFESTS[case]
    bad = _spoil(artifacts_dir, template, spoiled)
    before = snapshot(artifacts_dir)
    said = cli("runs", "list", "gated")
    assert said.code == 0, said.text
    lines = said.out.strip().splitlines()
    assert [line.split()[0] for line in lines] == ["good", "bad"]
    assert "completed" in lines[0]
    assert f"bad  unreadable  {bad / 'manifest.json'}: {field}: expected" in lines[1]
    assert snapshot(artifacts_dir) == before
    rows = list_runs("gated")
    assert [(r.run_id, r.status) for r in rows] == [("good", "completed"), ("bad", "unreadable")]


@pytest.mark.parametrize(
    "case", ["truncated", "huge_pid", "list_for_mapping", "another_experiment"]
)
def test_runs_show_refuses_an_unusable_manifest_in_one_line(
    cli: Cli, artifacts_dir: Path, template: Path, case: str
) -> None:
    spoiled, field = HOSTILE_MANIFESTS[case]
    bad = _spoil(artifacts_dir, template, spoiled)
    said = cli("runs", "show", str(bad))
    assert said.code == 1 and said.out == ""
    assert said.err.count("\n") == 1
    assert f"{bad / 'manifest.json'}: {field}: expected" in said.err


def test_since_with_naive_and_aware_timestamps(
    cli: Cli, artifacts_dir: Path, template: Path
) -> None:
    plant(artifacts_dir, template, "gated", "aware", started_at="2026-03-01T10:00:00+02:00")
    plant(artifacts_dir, template, "gated", "naive", started_at="2026-03-01T10:00:00")
    for since in ("2026-01-01", "2026-01-01T00:00:00+00:00"):
        said = cli("runs", "list", "gated", "--since", since)
        assert said.code == 0
        lines = said.out.strip().splitlines()
        assert lines[0].startswith("aware  2026-03-01T10:00:00+02:00  completed")
        assert lines[1].startswith("naive  unreadable") and "started_at" in lines[1]


def test_control_characters_in_records_never_reach_the_terminal(
    cli: Cli, artifacts_dir: Path, template: Path
) -> None:
    title = f"{ESC}]0;owned{chr(7)}{ESC}[2J\u202e"
    manifest = json.loads((template / "manifest.json").read_text())
    metrics = {**manifest["metrics"], f"x{ESC}[31m": 1}
    plant(artifacts_dir, template, "gated", "a", orchestrator=title, metrics=metrics)
    plant(artifacts_dir, template, "gated", "b")
    plant(artifacts_dir, template, "gated", f"c{ESC}[1m")  # a folder name is a record too
    listed = cli("runs", "list", "gated")
    compared = cli("runs", "compare", str(artifacts_dir / "gated" / "a"), "b")
    shown = cli("runs", "show", "a")
    for said in (listed, compared, shown):
        assert said.code == 0, said.text
        assert ESC not in said.text and chr(7) not in said.text and "\u202e" not in said.text
    assert "\\x1b]0;owned\\x07" in listed.out and "\\u202e" in listed.out
    assert "metrics.x\\x1b[31m: 1 -> (absent)" in compared.out
    assert "c\\x1b[1m  unreadable" in listed.out


# ---------------------------------------------------------------- scores.parquet read back


@pytest.mark.parametrize(
    ("table", "field"),
    [
        (b"PAR1 not a parquet file at all", "file"),
        (pd.DataFrame({"a": [1, 2], "b": [3, 4]}), "column 'unit_id'"),
        (pd.DataFrame({"unit_id": ["1"], "group": ["model"], "value": ["high"]}), "column 'value'"),
        (pd.DataFrame({"unit_id": [None], "group": ["model"], "value": [1.0]}), "column 'unit_id'"),
    ],
    ids=["corrupt", "column_less", "text_values", "missing_unit"],
)
def test_runs_compare_refuses_an_unusable_scores_table(
    cli: Cli, artifacts_dir: Path, template: Path, table: Any, field: str
) -> None:
    plant(artifacts_dir, template, "gated", "a")
    b = plant(artifacts_dir, template, "gated", "b")
    if isinstance(table, bytes):
        (b / "scores.parquet").write_bytes(table)
    else:
        table.to_parquet(b / "scores.parquet", index=False)
    before = snapshot(artifacts_dir)
    said = cli("runs", "compare", "a", "b")
    assert said.code == 1 and said.err.count("\n") == 1
    assert f"{b / 'scores.parquet'}: {field}: expected" in said.err
    assert snapshot(artifacts_dir) == before


# ---------------------------------------------------------------- accept


def test_accept_refuses_a_run_outside_the_artifacts_root(
    cli: Cli, artifacts_dir: Path, template: Path, tmp_path: Path
) -> None:
    artifacts_dir.mkdir()
    elsewhere = plant(tmp_path / "elsewhere", template, "gated", "r1")
    before = snapshot(tmp_path)
    said = cli("accept", str(elsewhere))
    assert said.code == 1 and said.err.count("\n") == 1
    assert str(elsewhere) in said.err and "under" in said.err
    assert snapshot(tmp_path) == before


def test_accept_refuses_a_run_whose_manifest_names_another_experiment(
    cli: Cli, artifacts_dir: Path, template: Path
) -> None:
    plant(artifacts_dir, template, "gated", "r1", experiment_id="other")
    before = snapshot(artifacts_dir)
    said = cli("accept", "r1")
    assert said.code == 1 and "manifest.json: experiment_id: expected the folder's name" in said.err
    assert snapshot(artifacts_dir) == before


@pytest.mark.parametrize("status", ["running", "interrupted"])
def test_accept_refuses_a_run_that_did_not_complete(
    cli: Cli, artifacts_dir: Path, template: Path, status: str
) -> None:
    plant(artifacts_dir, template, "gated", "r1", status=status, pid=os.getpid())
    before = snapshot(artifacts_dir)
    said = cli("accept", "r1")
    assert said.code == 1 and "status: expected 'completed'" in said.err
    assert f"found '{status}'" in said.err
    assert snapshot(artifacts_dir) == before


def test_accept_never_follows_a_planted_baselines_symlink(
    cli: Cli, artifacts_dir: Path, template: Path, tmp_path: Path
) -> None:
    plant(artifacts_dir, template, "gated", "r1")
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me\n")
    (artifacts_dir / "gated" / "baselines.jsonl").symlink_to(victim)
    said = cli("accept", "r1")
    assert said.code == 1 and "baselines.jsonl" in said.err
    assert victim.read_text() == "keep me\n"


ACCEPT_MANY = """
import sys
from crucible_dagster.run_history import accept
for i in range(int(sys.argv[2])):
    accept(sys.argv[1], f"{sys.argv[3]}-{i}-" + "\\u00e9" * 4000)
"""


@pytest.mark.slow
def test_racing_accepts_leave_every_line_intact(artifacts_dir: Path, template: Path) -> None:
    """Four processes accept at once, each line about 24 KB (the note's escapes): more than one
    buffered write, so without a lock the lines would interleave."""
    run_dir = plant(artifacts_dir, template, "gated", "r1")
    env = {**os.environ, "CRUCIBLE_ARTIFACTS_DIR": str(artifacts_dir)}
    procs = [
        subprocess.Popen([sys.executable, "-c", ACCEPT_MANY, str(run_dir), "10", f"w{n}"], env=env)
        for n in range(4)
    ]
    assert [p.wait(timeout=120) for p in procs] == [0, 0, 0, 0]
    lines = (artifacts_dir / "gated" / "baselines.jsonl").read_text().splitlines()
    notes = sorted(json.loads(line)["note"].split("-", 2)[0:2] for line in lines)
    assert len(lines) == 40
    assert notes == sorted([f"w{n}", str(i)] for n in range(4) for i in range(10))
    assert all(json.loads(line)["note"].endswith("\u00e9" * 4000) for line in lines)
    assert sorted(p.name for p in artifacts_dir.rglob("*") if p.is_file()) == sorted(
        [*(p.name for p in template.iterdir()), "baselines.jsonl"]
    )


# ---------------------------------------------------------------- the regression gate


def _gate_fails_not_comparable(root: Path, run_id: str, *words: str) -> None:
    status, gate = status_of(root, "gated", run_id)
    assert status == "failed", gate  # fail_run: a gate that could not compare never passes
    assert gate["outcome"] == "not_comparable", gate
    for word in words:
        assert word in gate["message"], gate["message"]


def test_the_gate_refuses_a_baselines_line_that_leads_out_of_its_experiment(
    artifacts_dir: Path, template: Path
) -> None:
    plant(artifacts_dir, template, "other", "o1")  # a run of another experiment, same units
    line = {"run_id": "../other/o1", "experiment_id": "gated", "accepted_at": "2026-01-01T00:00Z"}
    (artifacts_dir / "gated").mkdir()
    (artifacts_dir / "gated" / "baselines.jsonl").write_text(json.dumps(line) + "\n")
    before = snapshot(artifacts_dir / "other")
    result = run(gated(), run_id="r2")
    assert not result.ok
    _gate_fails_not_comparable(artifacts_dir, "r2", "baselines.jsonl:1", "run_id")
    assert snapshot(artifacts_dir / "other") == before


def test_the_gate_refuses_a_baseline_of_another_experiment(
    artifacts_dir: Path, template: Path
) -> None:
    plant(artifacts_dir, template, "other", "o1")
    line = {"run_id": "o1", "experiment_id": "other", "accepted_at": "2026-01-01T00:00Z"}
    (artifacts_dir / "gated").mkdir()
    (artifacts_dir / "gated" / "baselines.jsonl").write_text(json.dumps(line) + "\n")
    assert not run(gated(), run_id="r2").ok
    _gate_fails_not_comparable(artifacts_dir, "r2", "experiment_id", "another experiment")


@pytest.mark.parametrize("how", ["path", "symlink", "copied_manifest"])
def test_the_gate_refuses_a_named_baseline_from_elsewhere(
    artifacts_dir: Path, template: Path, how: str
) -> None:
    other = plant(artifacts_dir, template, "other", "o1")
    named = "../other/o1"
    if how == "symlink":
        (artifacts_dir / "gated").mkdir()
        (artifacts_dir / "gated" / "o1").symlink_to(other, target_is_directory=True)
        named = "o1"
    elif how == "copied_manifest":  # the other experiment's run copied in, its manifest as is
        shutil.copytree(other, artifacts_dir / "gated" / "o1")
        named = "o1"
    assert not run(gated(policy="run", run=named), run_id="r2").ok
    _gate_fails_not_comparable(artifacts_dir, "r2", "baseline")


def test_a_torn_last_baselines_line_is_said_never_skipped(
    artifacts_dir: Path, template: Path
) -> None:
    plant(artifacts_dir, template, "gated", "r1")
    good = {"run_id": "r1", "experiment_id": "gated", "accepted_at": "2026-01-01T00:00Z"}
    (artifacts_dir / "gated" / "baselines.jsonl").write_text(
        json.dumps(good) + '\n{"run_id": "r9", "experi'
    )
    assert not run(gated(), run_id="r2").ok
    _gate_fails_not_comparable(artifacts_dir, "r2", "baselines.jsonl:2", "truncated")


def test_a_baseline_with_an_unusable_scores_file_is_not_comparable(
    artifacts_dir: Path, template: Path
) -> None:
    base = plant(artifacts_dir, template, "gated", "r1")
    pd.DataFrame({"a": [1]}).to_parquet(base / "scores.parquet")
    assert not run(gated(policy="run", run="r1"), run_id="r2").ok
    _gate_fails_not_comparable(artifacts_dir, "r2", "scores.parquet", "column 'unit_id'")
    assert run(gated(policy="run", run="r1", fail_run=False), run_id="r3").ok
    assert status_of(artifacts_dir, "gated", "r3")[1]["outcome"] == "not_comparable"


def test_accept_refuses_a_fifo_planted_as_the_baselines_file(
    cli: Cli, artifacts_dir: Path, template: Path
) -> None:
    """Opening a FIFO for writing blocks until a reader comes: the accept must not hang."""
    plant(artifacts_dir, template, "gated", "r1")
    os.mkfifo(artifacts_dir / "gated" / "baselines.jsonl")
    said = cli("accept", "r1")
    assert said.code == 1 and said.err.count("\n") == 1 and "baselines.jsonl" in said.err


def _accept_job_error(config: dict[str, Any]) -> str:
    """The accept job run in Dagster with ``config``: it must fail, and this is its error."""
    from crucible_dagster.dagster_plugin.accept_job import accept_job
    from crucible_dagster.dagster_plugin.resource import CrucibleResource
    from tests.dagster_helpers import ephemeral_instance

    with ephemeral_instance() as instance:
        result = accept_job(CrucibleResource()).execute_in_process(
            instance=instance,
            run_config={"ops": {"accept_baseline": {"config": config}}},
            raise_on_error=False,
        )
    assert not result.success
    failure = result.failure_data_for_node("accept_baseline")
    assert failure is not None
    return str(failure.error)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("changes", "field"),
    [({"experiment_id": "other"}, "experiment_id"), ({"status": "failed"}, "status")],
)
def test_the_accept_job_refuses_what_accept_refuses(
    artifacts_dir: Path, template: Path, changes: dict[str, Any], field: str
) -> None:
    plant(artifacts_dir, template, "gated", "r1", **changes)
    before = snapshot(artifacts_dir)
    assert f"{field}: expected" in _accept_job_error({"experiment_id": "gated", "run_id": "r1"})
    assert snapshot(artifacts_dir) == before


@pytest.mark.slow
def test_the_accept_jobs_long_note_names_its_own_field_not_the_cli_flag(
    artifacts_dir: Path, template: Path
) -> None:
    """Attack A10: inside Dagster the note is the op's config field, not ``--note``."""
    plant(artifacts_dir, template, "gated", "r1")
    before = snapshot(artifacts_dir)
    message = _accept_job_error({"experiment_id": "gated", "run_id": "r1", "note": "x" * 4097})
    assert "ops.accept_baseline.config.note: expected at most 4096 characters, found 4097" in (
        message
    )
    assert "--note" not in message
    assert snapshot(artifacts_dir) == before


def test_a_gate_whose_metric_this_run_lacks_fails_when_fail_run(
    artifacts_dir: Path, template: Path
) -> None:
    """One model's scores, the gate on a group nobody scored: said in the check, never a pass."""
    plant(artifacts_dir, template, "gated", "r1")
    assert not run(gated(policy="run", run="r1", metric="scores:ghost"), run_id="r2").ok
    _gate_fails_not_comparable(artifacts_dir, "r2", "this run has no scores")


def test_history_frame_keeps_the_unreadable_runs_with_their_reason(
    artifacts_dir: Path, template: Path
) -> None:
    from crucible_dagster import history

    plant(artifacts_dir, template, "gated", "good")
    _spoil(artifacts_dir, template, HOSTILE_MANIFESTS["list_for_mapping"][0])
    frame = history("gated")
    assert list(frame["run_id"]) == ["good", "bad"]
    assert list(frame["status"]) == ["completed", "unreadable"]
    assert "stages: expected a valid dictionary" in frame["reason"].iloc[1]


@pytest.mark.parametrize("experiment_id", ["", "..", "g1/..", "../elsewhere/g1", "/tmp/g1"])
def test_history_takes_an_experiment_id_never_a_path(
    artifacts_dir: Path, template: Path, tmp_path: Path, experiment_id: str
) -> None:
    """Attack A6: history() read a folder outside the artifacts root (and listed its run as
    completed), or returned an empty frame for '..'; it refuses them as the CLI does."""
    from crucible_dagster import history

    plant(artifacts_dir, template, "g1", "r1")
    plant(tmp_path / "elsewhere", template, "g1", "r2")
    with pytest.raises(ValueError, match="experiment id") as refused:
        history(experiment_id)
    assert repr(experiment_id) in str(refused.value)
    assert list(history("g1")["run_id"]) == ["r1"]


def test_a_run_only_dagster_knows_is_listed_in_our_status_words(
    artifacts_dir: Path, template: Path
) -> None:
    """Attack A7: a Dagster-only run said 'failure' where run directories say 'failed', so
    filtering on 'failed' missed it; its status is ours, Dagster's word kept beside it."""
    from crucible_dagster.run_history.runs import list_runs

    plant(artifacts_dir, template, "gated", "mine", status="failed")
    words = ["failure", "success", "canceled", "started", "queued"]
    dagster = [{"run_id": f"d_{w}", "status": w, "started_at": None} for w in words]
    rows = {r.run_id: r for r in list_runs("gated", sources=[lambda _: dagster])}
    assert {k: (r.status, r.dagster_status) for k, r in rows.items() if k != "mine"} == {
        "d_failure": ("failed", "failure"),
        "d_success": ("completed", "success"),
        "d_canceled": ("interrupted", "canceled"),
        "d_started": ("running", "started"),
        "d_queued": ("queued", "queued"),
    }
    failed = list_runs("gated", status="failed", sources=[lambda _: dagster])
    assert sorted(r.run_id for r in failed) == ["d_failure", "mine"]
    with pytest.raises(ValueError, match="status: expected one of completed, failed"):
        list_runs("gated", status="failure")
