"""Hostile family for the budget and the rate limits (issue 24, section 5): each refused value
is refused alike by `crucible validate`, the Dagster loader and `crucible run` (one line naming
the file, line and field; no run directory), and the budget's ledger, a record read back, is
refused field by field, never spent past."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from subprocess import PIPE
from typing import Any

import pytest

from crucible_dagster.budget import Ledger, LedgerError
from crucible_dagster.budget.ledger import MAX_LEDGER_BYTES
from crucible_dagster.experiment.ir import Budget
from tests.conftest import ROOT, finish_together, subprocess_env
from tests.hostile.conftest import Cli
from tests.hostile.test_settings_parity import HEAD, _refused_everywhere

#: (case, text after HEAD, the field refused at line 4, a phrase of the one line)
BUDGETS = [
    ("negative", "budget: {max_requests: -1}\n", "budget.max_requests", "found -1"),
    ("nan", "budget: {max_cost: .nan}\n", "budget.max_cost", "found nan"),
    ("infinite", "budget: {max_tokens: .inf}\n", "budget.max_tokens", "found inf"),
    ("huge", "budget: {max_tokens: 10000000000000}\n", "budget.max_tokens", "from 0 to 1e+12"),
    ("bool", "budget: {max_requests: true}\n", "budget.max_requests", "got true (true/false"),
    ("text", "budget: {max_cost: '5'}\n", "budget.max_cost", "found '5'"),
    ("fraction_of_a_request", "budget: {max_requests: 2.5}\n", "budget.max_requests", "2.5"),
    ("empty", "budget: {}\n", "budget", "set at least one of max_cost, max_requests, max_tokens"),
    ("unknown_key", "budget: {max_costs: 1}\n", "budget.max_costs", "did you mean 'max_cost'?"),
    ("not_a_mapping", "budget: 5\n", "budget", ""),
]

BACKEND = "backend: {id: openai_compatible, endpoint_url: 'http://127.0.0.1:9/v1', options: "
RATES = [
    ("zero_rate", "{model: m, requests_per_minute: 0}", "requests_per_minute", "leave it out"),
    ("negative_rate", "{model: m, tokens_per_minute: -60}", "tokens_per_minute", "> 0"),
    ("nan_rate", "{model: m, requests_per_minute: .nan}", "requests_per_minute", "> 0"),
    ("infinite_rate", "{model: m, requests_per_minute: .inf}", "requests_per_minute", "<= 6e+07"),
    ("bool_rate", "{model: m, requests_per_minute: true}", "requests_per_minute", "boolean"),
    ("unknown_tokenizer", "{model: m, tokenizer: gpt}", "tokenizer", "chars4"),
    (
        "negative_completion",
        "{model: m, expected_completion_tokens: -1}",
        "expected_completion_tokens",
        "greater than or equal to 0",
    ),
]


@pytest.mark.parametrize(("case", "tail", "field", "phrase"), BUDGETS, ids=[c[0] for c in BUDGETS])
@pytest.mark.integration  # the Dagster loader is one of the three that refuse it
def test_a_budget_value_is_refused_everywhere_alike(
    cli: Cli,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    case: str,
    tail: str,
    field: str,
    phrase: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    _refused_everywhere(cli, tmp_path, case, HEAD + tail, 4, field, phrase)


@pytest.mark.parametrize(("case", "options", "field", "phrase"), RATES, ids=[c[0] for c in RATES])
@pytest.mark.integration  # the Dagster loader is one of the three that refuse it
def test_a_rate_option_is_refused_everywhere_alike(
    cli: Cli,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    case: str,
    options: str,
    field: str,
    phrase: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    text = HEAD.replace("validate", "predict") + BACKEND + options + "}\n"
    _refused_everywhere(cli, tmp_path, case, text, 4, f"backend.options.{field}", phrase)


@pytest.mark.integration  # the Dagster loader is one of the three that refuse it
def test_a_budget_no_stage_acts_on_is_refused_everywhere(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    text = HEAD + "budget: {max_requests: 5}\n"
    _refused_everywhere(cli, tmp_path, "unused", text, 4, "budget", "predict, generate or ensemble")


@pytest.mark.integration  # the Dagster loader is one of the three that refuse it
def test_a_cost_budget_over_an_unpriced_backend_is_refused_everywhere(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its requests would cost nothing: the budget would never stop them."""
    monkeypatch.chdir(tmp_path)
    text = (
        HEAD.replace("validate", "predict") + "budget: {max_cost: 1}\n" + BACKEND + "{model: m}}\n"
    )
    phrase = "set, but the backend at backend has no prices"
    _refused_everywhere(cli, tmp_path, "unpriced", text, 4, "budget.max_cost", phrase)


# --- the ledger, read back -------------------------------------------------------------------


def ledger(folder: Path, **limits: Any) -> Ledger:
    return Ledger(Budget(**limits), folder / "budget.json", key="r", experiment_id="exp")


GOOD = {
    "experiment_id": "exp",
    "requests": 1,
    "tokens": 2,
    "cost": 0.5,
    "reserved_tokens": 0,
    "reserved_cost": 0.0,
    "in_flight": 0,
    "refused": 0,
    "exhausted": False,
    "reason": None,
}
BAD_FIELDS = [
    ("requests", "3"),
    ("requests", -1),
    ("requests", True),
    ("requests", 10**20),
    ("cost", float("inf")),
    ("cost", "0.1"),
    ("exhausted", "no"),
    ("reason", "x" * 1000),
    ("experiment_id", "another"),
    ("in_flight", None),
]


@pytest.mark.parametrize(
    ("field", "value"), BAD_FIELDS, ids=[f"{f}-{v!r}"[:40] for f, v in BAD_FIELDS]
)
def test_a_ledger_field_of_the_wrong_kind_refuses_every_request(
    tmp_path: Path, field: str, value: Any
) -> None:
    path = tmp_path / "budget.json"
    path.write_text(json.dumps({**GOOD, field: value}))
    before = path.read_bytes()
    with pytest.raises(
        LedgerError,
        match=rf"^budget exhausted \(the ledger cannot be read: {path}: {field}: expected ",
    ):
        ledger(tmp_path, max_requests=100).reserve(1, 0.0)
    assert path.read_bytes() == before  # a record it cannot read is never overwritten


@pytest.mark.parametrize(
    "content",
    [b"", b'{"experiment_id": "exp", "requ', b"\xff\xfe{}", b"[1, 2]", b"[" * 100_000],
    ids=["empty", "truncated", "not_utf8", "a_list", "deeply_nested"],
)
def test_a_ledger_that_is_not_one_refuses_every_request(tmp_path: Path, content: bytes) -> None:
    (tmp_path / "budget.json").write_bytes(content)
    with pytest.raises(LedgerError, match=r"budget\.json"):
        ledger(tmp_path, max_requests=100).reserve(1, 0.0)


def test_a_ledger_too_large_or_not_a_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "budget.json"
    path.write_bytes(b" " * (MAX_LEDGER_BYTES + 1))
    with pytest.raises(LedgerError, match="over the"):
        ledger(tmp_path, max_requests=1).reserve(1, 0.0)
    path.unlink()
    path.mkdir()
    with pytest.raises(LedgerError, match="regular file"):
        ledger(tmp_path, max_requests=1).reserve(1, 0.0)
    path.rmdir()
    outside = tmp_path / "elsewhere.json"
    outside.write_text(json.dumps(GOOD))
    path.symlink_to(outside)
    with pytest.raises(LedgerError, match="regular file"):
        ledger(tmp_path, max_requests=100).reserve(1, 0.0)
    assert json.loads(outside.read_text()) == GOOD  # never written through the link
    path.unlink()
    os.mkfifo(path)
    with pytest.raises(LedgerError, match="regular file"):  # never opened: no hang
        ledger(tmp_path, max_requests=1).reserve(1, 0.0)


@pytest.mark.slow  # three fresh interpreters
def test_processes_racing_for_one_budget_get_exactly_it(tmp_path: Path) -> None:
    """Three processes (as Celery workers running a sweep's trials) ask 30 requests each of a
    budget of 40: 40 are granted, in total, and the ledger says so. Plain subprocesses bounded
    by one deadline: a worker that dies or stalls fails the test, saying which, never hangs it
    (a multiprocessing pool waits forever for the task of a worker that died)."""
    command = [sys.executable, "-m", "tests.budget_spender", str(tmp_path), "30", "40"]
    procs = [
        subprocess.Popen(
            command, cwd=ROOT, env=subprocess_env(), stdout=PIPE, stderr=PIPE, text=True
        )
        for _ in range(3)
    ]
    results = finish_together(procs, timeout=120)
    assert [code for code, _, _ in results] == [0, 0, 0], [err for _, _, err in results]
    granted = [json.loads(out)["granted"] for _, out, _ in results]
    assert sum(granted) == 40
    state = json.loads((tmp_path / "budget.json").read_text())
    assert state["requests"] == 40 and state["refused"] == 50 and state["in_flight"] == 0
