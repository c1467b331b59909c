"""A raced sweep on real Celery workers (RabbitMQ on 127.0.0.1:5672, the instance on
PostgreSQL): each round's evaluations are steps of their own that the workers share, and the
race decides as it does in one process. Without a broker it skips (under CI it fails)."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import pytest
import yaml

from crucible_dagster.experiment.loading import load_experiment
from crucible_dagster.sweeps.standalone import run_sweep
from tests.integration.test_celery import wait
from tests.integration.test_racing_live import raced_yaml
from tests.services import Deployment, broker, deployment, postgres_db

pytestmark = [pytest.mark.postgres, pytest.mark.slow]
__all__ = ["broker", "deployment", "postgres_db"]  # fixtures, used by name


def test_a_rounds_evaluations_spread_over_two_workers(
    deployment: Deployment, tmp_path: Path
) -> None:
    data = raced_yaml(deployment.experiments, "celery_race", executor="celery")
    data["sweep"] = {**data["sweep"], "trials_per_step": 1}  # a step per trial: any worker
    data["pipeline"].append(
        {"name": "pause", "module": "tests.helpers:Sleep", "options": {"seconds": 0.3}}
    )
    path = deployment.experiments / "celery_race.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    deployment.start_workers(2)
    wait(deployment.execute("celery_race"), timeout=600)

    (run_dir,) = [p for p in (deployment.artifacts / "celery_race").iterdir() if p.is_dir()]
    record = json.loads((run_dir / "race.json").read_text())
    trials = deployment.trial_manifests("celery_race")
    assert {t["status"] for t in trials} == {"completed"}
    assert len(trials) == record["evaluations"]  # only what the race asked for ran
    workers = set(deployment.workers().values())
    by_round: dict[int, set[int]] = defaultdict(set)
    seeds_of = {b: r["index"] for r in record["rounds"] for b in r["blocks"]}
    for trial in trials:
        seed = trial["dir"].rsplit("seed_", 1)[1]
        by_round[seeds_of[seed]].add(trial["pid"])
    assert {pid for pids in by_round.values() for pid in pids} <= workers  # never the run's
    assert len(by_round[1]) == 2, by_round  # round 1's six evaluations, on both workers

    alone = run_sweep(load_experiment(path), run_id="alone", artifacts=str(tmp_path / "alone"))
    expected = json.loads((tmp_path / "alone" / "celery_race" / "alone" / "race.json").read_text())
    assert record["rounds"] == expected["rounds"]
    assert record["survivors"] == alone.comparison["race"]["survivors"] == ["level_0_95"]
