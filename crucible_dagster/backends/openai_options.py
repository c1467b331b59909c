"""The options of the OpenAI-compatible backend (``backend.options``), checked before a run."""

from __future__ import annotations

import re
from typing import Any

from pydantic import Field, field_validator

from crucible_dagster.backends.base import BackendOptions
from crucible_dagster.backends.tokens import Tokenizer, tiktoken_available

CACHE_ENV = "CRUCIBLE_CACHE_DIR"
MAX_RESPONSE_BYTES = 16 * 1024 * 1024
RETRYABLE_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504})
#: a rate beyond any server (a million a second): a typo, refused
#: the most a million tokens may cost (in the price unit): far above any real price
MAX_PRICE = 1e6
MIN_RATE_PER_MINUTE = 1 / (24 * 60)
MAX_RATE_PER_MINUTE = 6e7
#: an environment variable's name as a shell spells it (a letter or '_', then letters, digits, '_')
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")


class OpenAIOptions(BackendOptions):
    model: str = Field(description="The model name the server knows.")
    base_url: str | None = Field(
        default=None, description="API root ending in /v1; default: the backend's endpoint_url."
    )
    base_url_env: str | None = Field(
        default=None,
        description="An environment variable holding the API root: when it is set and not "
        "empty, it is used instead of base_url and endpoint_url (which stay the default).",
    )
    api_key_env: str = Field(
        default="OPENAI_API_KEY", description="Environment variable of the key."
    )
    system: str | None = Field(default=None, description="A system message before each input.")
    temperature: float = Field(default=0.0, ge=0, le=2)
    max_tokens: int | None = Field(default=None, ge=1, le=10_000_000)
    timeout_s: float = Field(
        default=30.0, gt=0, le=3600, description="Deadline for each whole request (all of it)."
    )
    max_retries: int = Field(default=3, ge=0, le=10)
    backoff_s: float = Field(
        default=0.5, ge=0, description="First retry's wait; doubles each time."
    )
    max_backoff_s: float = Field(
        default=30.0, ge=0, le=3600, description="Longest wait before a retry (Retry-After too)."
    )
    max_response_bytes: int = Field(
        default=MAX_RESPONSE_BYTES, ge=1, le=1 << 30, description="Larger answers are errors."
    )
    concurrency: int = Field(default=4, ge=1, le=256, description="Requests in flight at once.")
    cache_dir: str | None = Field(
        default=None,
        description=f"Response cache; default ${CACHE_ENV}, else ~/.cache/crucible_dagster.",
    )
    cache: bool = Field(default=True, description="Read and write the response cache.")
    # bounded: a price of 1e308 made every cost inf, and the budget ledger then unreadable
    price_per_million_input: float | None = Field(
        default=None, ge=0, le=MAX_PRICE, allow_inf_nan=False, description="For cost."
    )
    price_per_million_output: float | None = Field(
        default=None, ge=0, le=MAX_PRICE, allow_inf_nan=False, description="For cost."
    )
    requests_per_minute: float | None = Field(
        default=None, description="At most this many requests a minute (retries, hedges count)."
    )
    tokens_per_minute: float | None = Field(
        default=None, description="At most this many tokens a minute (estimated, then usage)."
    )
    tokenizer: Tokenizer = Field(
        default="chars4",
        description="How tokens are estimated before sending: chars4 (chars/4), words, tiktoken.",
    )
    expected_completion_tokens: int | None = Field(
        default=None,
        ge=0,
        le=10**7,
        description="An answer's tokens for estimates (else max_tokens).",
    )

    @field_validator(
        "temperature", "max_tokens", "timeout_s", "max_retries", "backoff_s", "max_backoff_s",
        "max_response_bytes", "concurrency", "price_per_million_input", "price_per_million_output",
        "requests_per_minute", "tokens_per_minute", "expected_completion_tokens",
        mode="before",
    )  # fmt: skip
    @classmethod
    def _no_bool(cls, value: Any) -> Any:
        """``true`` is not a number here, though Python counts it as 1."""
        if isinstance(value, bool):
            raise ValueError("expected a number, found a boolean")
        return value

    @field_validator("requests_per_minute", "tokens_per_minute")
    @classmethod
    def _rate(cls, value: float | None) -> float | None:
        """A rate the limiter can hold: at least one a day (0 would never send, and 1e-300
        made the wait overflow the clock), finite, not absurd."""
        if value is not None and not MIN_RATE_PER_MINUTE <= value <= MAX_RATE_PER_MINUTE:
            raise ValueError(
                f"expected a rate per minute > 0, at least {MIN_RATE_PER_MINUTE:.2g} (one a day) "
                f"and <= {MAX_RATE_PER_MINUTE:.0e} (leave it out for no limit)"
            )
        return value

    @field_validator("base_url_env", "api_key_env")
    @classmethod
    def _env_name(cls, value: str | None) -> str | None:
        if value is not None and not ENV_NAME.fullmatch(value):
            raise ValueError(
                "expected an environment variable's name (a letter or '_', then letters, "
                f"digits or '_', at most 128), found {value[:60]!r}"
            )
        return value

    @field_validator("tokenizer")
    @classmethod
    def _tokenizer(cls, value: Tokenizer) -> Tokenizer:
        if value == "tiktoken" and not tiktoken_available():
            raise ValueError(
                "'tiktoken' needs the tiktoken package (pip install tiktoken); or use 'chars4' "
                "or 'words'"
            )
        return value
