"""An outsider's attack on the rate limits and the budget (issue 24, section 5). Before the
fixes ``requests_per_minute: 1e-300`` passed every check and every request after the first
failed with "OverflowError: timestamp out of range for platform time_t" (the wait overflowed
the clock), and a server whose ``usage`` claimed 10^18 tokens was believed: the budget ledger
then held more than it may and refused every later request as unreadable."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from crucible_dagster.backends.base import Request
from crucible_dagster.backends.openai_options import OpenAIOptions
from crucible_dagster.backends.rate_limit import MAX_WAIT_S, RateLimiter
from crucible_dagster.backends.registry import build_backend
from crucible_dagster.budget import Ledger
from crucible_dagster.contrib.llm_server import Raw, completion_body, llm_server
from crucible_dagster.experiment.ir import BackendRef, Budget
from tests.hostile.conftest import Cli
from tests.hostile.test_budget_values import BACKEND
from tests.hostile.test_settings_parity import HEAD, _refused_everywhere


@pytest.mark.parametrize("field", ["requests_per_minute", "tokens_per_minute"])
def test_a_rate_too_slow_to_ever_send_is_refused(field: str) -> None:
    with pytest.raises(ValueError, match=r"at least 0\.00069 \(one a day\)"):
        OpenAIOptions.model_validate({"model": "m", field: 1e-300})
    assert OpenAIOptions.model_validate({"model": "m", field: 1 / 1440}).model_dump()[field]


@pytest.mark.integration  # the Dagster loader is one of the three that refuse it
def test_a_rate_too_slow_is_refused_everywhere_alike(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    text = (
        HEAD.replace("validate", "predict") + BACKEND + "{model: m, requests_per_minute: 1e-300}}\n"
    )
    _refused_everywhere(
        cli, tmp_path, "slow", text, 4, "backend.options.requests_per_minute", "one a day"
    )


def test_a_long_wait_is_taken_in_bounded_steps() -> None:
    """However far the next turn is (a debt of tokens left by a long answer), one wait on the
    condition never asks the platform for more than MAX_WAIT_S."""
    now = [0.0]
    limiter = RateLimiter(None, 1 / 1440, clock=lambda: now[0])
    assert limiter.tokens is not None
    limiter.tokens.take(10**9)  # an answer that used far more than its estimate
    assert limiter._wait_s(1) > MAX_WAIT_S
    waits: list[float] = []

    class Recording:
        def wait(self, seconds: float) -> None:
            waits.append(seconds)
            limiter._closed = True  # the batch stops: the waiting request gives up

        def __enter__(self) -> Any:
            return self

        def __exit__(self, *exc: object) -> None:
            return None

    limiter._changed = Recording()  # type: ignore[assignment]
    with pytest.raises(Exception, match="not sent"):
        limiter.acquire(1)
    assert waits == [MAX_WAIT_S]


def test_an_answer_claiming_absurd_usage_is_that_samples_error_and_never_counted(
    tmp_path: Path,
) -> None:
    huge = Raw(body=completion_body("x", usage={"prompt_tokens": 10**18, "completion_tokens": 1}))
    with llm_server() as (url, server):
        server.script = lambda n, body: huge if body["messages"][-1]["content"] == "liar" else None
        ref = BackendRef.model_validate(
            {
                "id": "openai_compatible",
                "endpoint_url": url,
                "options": {"model": "m", "cache": False, "max_retries": 0},
            }
        )
        client: Any = build_backend(ref)
        ledger = Ledger(
            Budget(max_tokens=10_000), tmp_path / "budget.json", key="r", experiment_id="e"
        )
        client = client.with_budget(ledger)
        answers = {
            r.sample_id: r for r in client.predict([Request("liar", "liar"), Request("ok", "1+1")])
        }
        later = {r.sample_id: r for r in client.predict([Request("after", "2+2")])}
    assert "usage.prompt_tokens: expected at most 1e+09 tokens, found 1000000000000000000" in str(
        answers["liar"].error
    )
    assert answers["ok"].output == "2" and later["after"].output == "4"  # the ledger still reads
    spent = ledger.snapshot()
    assert spent["exhausted"] is False and spent["spent"]["tokens"] < 10_000


@pytest.mark.parametrize(
    ("option", "value", "phrase"),
    [
        ("max_tokens", 10**18, "less than or equal to 10000000"),
        ("price_per_million_input", 1e308, "less than or equal to 1000000"),
        ("price_per_million_output", float("inf"), "finite number"),
    ],
)
def test_absurd_token_caps_and_prices_are_refused(option: str, value: Any, phrase: str) -> None:
    """``max_tokens: 10**18`` planned 3e18 completion tokens and was sent to the server; a price
    of 1e308 planned an infinite cost and would have made the budget ledger unreadable."""
    with pytest.raises(ValueError, match=phrase):
        OpenAIOptions.model_validate({"model": "m", option: value})
