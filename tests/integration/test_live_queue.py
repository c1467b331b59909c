"""Live: the shipped dagster.queued.yaml on PostgreSQL, its queue served by dagster-daemon: two
runs of one experiment submitted at once run one after the other (the crucible/experiment tag
limit), and both succeed."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.integration.test_live_schedule_gate import _submit, _wait
from tests.integration.test_live_webserver import live_dagster_at
from tests.services import postgres_db, postgres_home

pytestmark = [pytest.mark.live, pytest.mark.postgres]
__all__ = ["postgres_db"]

SLOW = """\
id: queued_demo
pipeline:
  - name: pause
    module: tests.helpers:Sleep
    options: {seconds: 2}
"""


def test_one_run_per_experiment_at_a_time(
    postgres_db: str, tmp_path: Path, artifacts_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    postgres_home(postgres_db, tmp_path / "template", monkeypatch)  # the CRUCIBLE_PG_* variables
    folder = tmp_path / "experiments"
    folder.mkdir()
    (folder / "queued_demo.yaml").write_text(SLOW)
    env = {"CRUCIBLE_EXPERIMENTS_DIR": str(folder)}
    with live_dagster_at(tmp_path, artifacts_dir, ROOT / "dagster.queued.yaml", **env) as live:
        client = live.client
        runs = [_submit(client, "queued_demo") for _ in range(2)]
        seen: set[tuple[str, ...]] = set()
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            states = tuple(str(client.get_run_status(r).value) for r in runs)
            seen.add(states)
            if all(s in ("SUCCESS", "FAILURE", "CANCELED") for s in states):
                break
            time.sleep(0.2)
        assert [_wait(client, r) for r in runs] == ["SUCCESS", "SUCCESS"]
        with live.instance() as instance:
            records = sorted(
                (r for r in instance.get_run_records() if r.dagster_run.run_id in runs),
                key=lambda r: r.start_time or 0,
            )
    assert len(records) == 2 and all(r.start_time and r.end_time for r in records)
    first, second = records
    assert first.end_time is not None and second.start_time is not None
    assert first.end_time <= second.start_time  # never both at once
    assert any("QUEUED" in states for states in seen)  # one waited in the queue
    assert not any(states.count("STARTED") == 2 for states in seen)
