"""Token counts before a request is sent: for the rate limiter, the budget and the dry run.

A server counts tokens with its model's tokenizer, which the client does not have. The
``tokenizer`` option says how to estimate, honestly an estimate:

- ``chars4`` (the default): one token per four characters of each message's text, rounded up:
  OpenAI's documented rule of thumb for English; off by tens of percent for code and for
  other languages.
- ``words``: whitespace-separated words: what the bundled test server counts (exact there),
  and closer than ``chars4`` for plain English prose on most tokenizers (about 0.75 words a
  token: an under-estimate).
- ``tiktoken``: OpenAI's tokenizer, when the ``tiktoken`` package is installed (the model's
  encoding, else ``cl100k_base``); exact for OpenAI's models, an estimate for others.

Only the messages' text is counted: chat formats add a few tokens a message, which none of
these see. Completion tokens are ``expected_completion_tokens`` when set, else ``max_tokens``
(an upper bound), else 0 (unknown: the dry run says so).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import cache
from typing import Any, Literal

Tokenizer = Literal["chars4", "words", "tiktoken"]
TOKENIZERS: tuple[str, ...] = ("chars4", "words", "tiktoken")


def message_texts(messages: Any) -> list[str]:
    """The text of each chat message (a string content, or the text parts of a list)."""
    texts: list[str] = []
    for message in messages if isinstance(messages, list) else []:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, str):
            texts.append(content)
        elif isinstance(content, list):
            texts += [
                part["text"]
                for part in content
                if isinstance(part, dict) and isinstance(part.get("text"), str)
            ]
    return texts


def tiktoken_available() -> bool:
    try:
        import tiktoken  # noqa: F401
    except ImportError:
        return False
    return True


@cache
def _tiktoken_counter(model: str) -> Callable[[str], int]:
    import tiktoken

    try:
        encoding = tiktoken.encoding_for_model(model)
    except KeyError:
        encoding = tiktoken.get_encoding("cl100k_base")
    return lambda text: len(encoding.encode(text, disallowed_special=()))


def count_text(text: str, tokenizer: Tokenizer, model: str = "") -> int:
    if tokenizer == "words":
        return len(text.split())
    if tokenizer == "tiktoken":
        return _tiktoken_counter(model)(text)
    return math.ceil(len(text) / 4)


def prompt_tokens(messages: Any, tokenizer: Tokenizer, model: str = "") -> int:
    """The estimated prompt tokens of a chat request's ``messages``."""
    return sum(count_text(text, tokenizer, model) for text in message_texts(messages))


def completion_estimate(expected: int | None, max_tokens: int | None) -> int:
    """What the answer is expected to take: the user's figure, else the cap, else 0."""
    if expected is not None:
        return expected
    return max_tokens if max_tokens is not None else 0
