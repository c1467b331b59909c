"""The run's budget: the ledger its backends consult, a run that stops calling when the budget
is spent (``budget_exhausted``, every answer kept), and a sweep whose trials share one budget;
against the bundled test server (real HTTP)."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest

from crucible_dagster import Experiment
from crucible_dagster.budget import BudgetExhausted, Ledger, LedgerError
from crucible_dagster.contrib.llm_server import llm_server
from crucible_dagster.experiment.ir import Budget
from crucible_dagster.run_history.records import read_run
from crucible_dagster.runtime.runner import run
from tests.conftest import Cli

SEED = "crucible_dagster.contrib.examples:SeedExamples"


def examples(count: int) -> list[dict[str, Any]]:
    """Sums the test server answers right, in one word: one completion token each."""
    return [{"id": f"s{i}", "input": f"{i}+1", "output": str(i + 1)} for i in range(count)]


def backend(url: str, model: str = "m", **options: Any) -> dict[str, Any]:
    return {
        "id": "openai_compatible",
        "endpoint_url": url,
        "options": {
            "model": model,
            "cache": False,
            "concurrency": 1,
            "price_per_million_input": 1000.0,
            "price_per_million_output": 2000.0,
            "tokenizer": "words",
            "expected_completion_tokens": 1,
            **options,
        },
    }


def experiment(
    url: str, budget: dict[str, Any] | None, count: int = 10, **extra: Any
) -> Experiment:
    data: dict[str, Any] = {
        "id": "cost_demo",
        "backend": backend(url),
        "pipeline": [
            {"name": "seed", "module": SEED, "options": {"examples": examples(count)}},
            {"name": "predict", "options": {"inputs": "examples", "reference": "output"}},
            {"name": "score", "options": {"metric": "exact_match"}},
        ],
        **extra,
    }
    if budget is not None:
        data["budget"] = budget
    return Experiment.model_validate(data)


def ledger(tmp_path: Path, **limits: Any) -> Ledger:
    return Ledger(Budget(**limits), tmp_path / "budget.json", key="r", experiment_id="cost_demo")


# --- the ledger -----------------------------------------------------------------------------


def test_max_requests_is_exact_and_then_every_request_is_refused(tmp_path: Path) -> None:
    book = ledger(tmp_path, max_requests=3)
    for _ in range(3):
        book.settle(book.reserve(5, 0.0), 5, 0.0)
    with pytest.raises(BudgetExhausted, match=r"max_requests 3 reached"):
        book.reserve(1, 0.0)
    snapshot = book.snapshot()
    assert snapshot["spent"] == {"requests": 3, "tokens": 15, "cost": 0.0, "refused": 1}
    assert snapshot["exhausted"] is True


def test_tokens_in_flight_count_before_their_answer(tmp_path: Path) -> None:
    book = ledger(tmp_path, max_tokens=10)
    first = book.reserve(6, 0.0)  # in flight, not settled
    with pytest.raises(BudgetExhausted, match="max_tokens 10"):
        book.reserve(6, 0.0)
    book.settle(first, 4, 0.0)
    # once exhausted, the run stops calling: room made afterwards is not spent
    with pytest.raises(BudgetExhausted):
        book.reserve(1, 0.0)


def test_a_cost_budget_of_exactly_the_estimate_lets_the_last_request_through(
    tmp_path: Path,
) -> None:
    book = ledger(tmp_path, max_cost=0.3)
    for _ in range(3):  # 0.1 + 0.1 + 0.1 is 0.30000000000000004 in floating point
        book.settle(book.reserve(1, 0.1), 1, 0.1)
    with pytest.raises(BudgetExhausted, match="max_cost"):
        book.reserve(1, 0.1)


def test_threads_and_processes_share_one_count(tmp_path: Path) -> None:
    """Eight threads with a ledger object each (as stages in other processes would have) race
    for 25 requests: exactly 25 are granted."""
    granted: list[int] = []

    def ask() -> None:
        book = ledger(tmp_path, max_requests=25)
        for _ in range(10):
            try:
                book.settle(book.reserve(1, 0.0), 1, 0.0)
                granted.append(1)
            except BudgetExhausted:
                pass

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(granted) == 25
    state = json.loads((tmp_path / "budget.json").read_text())
    assert state["requests"] == 25 and state["in_flight"] == 0 and state["refused"] == 55


# --- a run ----------------------------------------------------------------------------------


def test_a_run_stops_calling_at_its_budget_and_keeps_every_answer(artifacts_dir: Path) -> None:
    with llm_server() as (url, server):
        result = run(experiment(url, {"max_requests": 4}))
    assert sum(server.requests.values()) == 4  # not one more was sent
    assert result.status == "budget_exhausted" and result.failure is None
    table = result.context.assigns["predictions"]
    answered = table[table["error"].isna()]
    assert list(answered["prediction"]) == ["1", "2", "3", "4"]  # concurrency 1: in order
    assert table["error"].dropna().str.startswith("budget exhausted (max_requests 4").all()
    # never asked is not wrong: scored on the four answered, all right
    assert result.context.metrics["score"]["variants"]["model"]["mean"] == 1.0
    assert result.context.metrics["score"]["variants"]["model"]["n"] == 4
    read = read_run(Path(result.run_dir or ""))
    assert read.manifest.status == "budget_exhausted"
    assert read.manifest.metrics["budget"]["spent"]["requests"] == 4
    saved = __import__("pandas").read_parquet(Path(result.run_dir or "") / "predictions.parquet")
    assert saved["prediction"].notna().sum() == 4  # the answers are on disk too
    # each refused request is a telemetry event of the stage (issue 27)
    from crucible_dagster.telemetry import read_events

    events, _ = read_events(Path(result.run_dir or "") / "telemetry.jsonl")
    refused = [e for e in events if e.event == "budget_refused"]
    assert len(refused) == len(table) - 4 and {e.error_kind for e in refused} == {"budget"}
    assert {e.stage for e in refused} == {"predict"}


def test_a_budget_of_zero_sends_nothing_and_the_run_still_ends_in_order() -> None:
    with llm_server() as (url, server):
        result = run(experiment(url, {"max_cost": 0}))
    assert sum(server.requests.values()) == 0
    assert result.status == "budget_exhausted" and result.failure is None
    assert result.context.metrics["score"]["variants"]["model"]["n"] == 0


def test_a_run_within_its_budget_completes_and_says_what_it_spent() -> None:
    with llm_server() as (url, _server):
        result = run(experiment(url, {"max_tokens": 1000, "max_cost": 1.0}))
    assert result.status == "completed"
    spent = result.context.metrics["budget"]["spent"]
    assert spent["requests"] == 10
    assert spent["tokens"] == 20  # one word in, one word out, per sample
    assert spent["cost"] == pytest.approx(10 * (1 * 1000 + 1 * 2000) / 1e6)


def test_retries_count_as_requests() -> None:
    with llm_server() as (url, server):
        server.fail_next(2, status=503)
        data = experiment(url, {"max_requests": 3}, count=3)
        assert data.backend is not None
        data.backend.options = {**(data.backend.options or {}), "backoff_s": 0.0}
        result = run(data)
    assert sum(server.requests.values()) == 3  # two failures and the retry that answered
    table = result.context.assigns["predictions"]
    assert table["prediction"].notna().sum() == 1
    assert result.status == "budget_exhausted"


@pytest.mark.slow
def test_a_sweep_shares_one_budget_across_its_trials() -> None:
    from crucible_dagster.sweeps.standalone import run_sweep

    with llm_server() as (url, server):
        data = experiment(url, {"max_requests": 15}, seeds=[1, 2, 3])
        result = run_sweep(data.model_copy(update={"sweep": None}))
    assert sum(server.requests.values()) == 15  # 10 + 5, then nothing for the third trial
    statuses = [o.status for o in result.outcomes]
    assert statuses == ["completed", "budget_exhausted", "budget_exhausted"]
    assert read_run(Path(result.run_dir)).manifest.status == "budget_exhausted"
    assert result.comparison["budget_exhausted_trials"] == ["seed_2", "seed_3"]
    assert result.comparison["failed_trials"] == []


def test_the_ledger_a_run_reads_back_is_checked(tmp_path: Path) -> None:
    path = tmp_path / "budget.json"
    path.write_text(json.dumps({"experiment_id": "other", "requests": 0}))
    with pytest.raises(LedgerError, match=r"budget.json: experiment_id: expected 'cost_demo'"):
        ledger(tmp_path, max_requests=3).reserve(1, 0.0)


# --- the command line -----------------------------------------------------------------------


def write_experiment(path: Path, data: Experiment) -> Path:
    import yaml

    path.write_text(yaml.safe_dump(data.model_dump(mode="json", exclude_defaults=True)))
    return path


@pytest.mark.slow
def test_crucible_run_says_the_budget_ran_out_and_runs_list_shows_it(
    cli: Cli, tmp_path: Path
) -> None:
    with llm_server() as (url, server):
        path = write_experiment(tmp_path / "cost.yaml", experiment(url, {"max_requests": 2}))
        ran = cli("run", path, "--run-id", "short")
        within = write_experiment(tmp_path / "ok.yaml", experiment(url, {"max_requests": 20}))
        assert cli("run", within, "--run-id", "whole").code == 0
    assert ran.code == 3  # an answer, not an error: every stage ran, the answers are kept
    assert "run short: budget_exhausted" in ran.err
    assert "budget exhausted (max_requests 2 reached): the answers had are kept" in ran.err
    assert sum(server.requests.values()) == 2 + 10
    listed = cli("runs", "list", "cost_demo")
    assert listed.code == 0
    assert any(
        line.split()[:1] == ["short"] and "budget_exhausted" in line
        for line in listed.out.splitlines()
    )
    only = cli("runs", "list", "cost_demo", "--status", "budget_exhausted")
    assert "short" in only.out and "whole" not in only.out


def test_the_gate_does_not_judge_and_the_report_says_why_when_the_budget_ran_out() -> None:
    from crucible_dagster.experiment.ir import RegressionBaseline
    from crucible_dagster.quality.gate import evaluate_gate
    from crucible_dagster.reports.model import budget_line
    from crucible_dagster.runtime.context import Context

    budget = {
        "limits": {"max_requests": 4},
        "spent": {"requests": 4, "tokens": 8, "cost": 0.012, "refused": 6},
        "exhausted": True,
        "reason": "max_requests 4 reached",
    }
    ctx = Context("e", "r", run_dir="/nowhere").put_metric("budget", budget)
    result = evaluate_gate(ctx, RegressionBaseline(metric="score.mean"))
    assert result.outcome == "not_comparable" and not result.passed
    assert "budget ran out (max_requests 4 reached)" in result.message
    assert budget_line(budget) == (
        "exhausted (max_requests 4 reached): 6 request(s) not sent; spent: requests 4 of 4, "
        "tokens 8, cost 0.012"
    )
    within = {**budget, "exhausted": False, "reason": None, "limits": {"max_cost": 1.0}}
    assert budget_line(within) == "within budget; spent: requests 4, tokens 8, cost 0.012 of 1"
    assert budget_line(None) is None
    from crucible_dagster.reports.html import render_html
    from crucible_dagster.reports.markdown import render_markdown

    # markdown escaped: the reason is text from a record
    assert r"- budget: exhausted \(max\_requests 4 reached\): 6 request\(s\)" in render_markdown(
        ctx
    )
    assert "exhausted (max_requests 4 reached)" in render_html(ctx)
