"""What the bundled LLM server's simulated models answer: the same messages give the same answer.

A GSM8K question the server knows (its answer key: the GSM8K-format samples the project ships,
``datasets/samples/gsm8k``, plus any file given with ``--answers``) is answered right when the
hash of (model, system message, question message) falls below the model's accuracy, wrong by a
small nonzero amount otherwise, always as ``The answer is N.`` (four words, so the dry run's
``expected_completion_tokens: 4`` is exact). Worked examples before the question (few-shot
turns) add ``FEW_SHOT_BONUS`` to the accuracy. So two models differ on a subset fixed by the
hash (``qa-large`` is right about twice as often as ``qa-small``), two prompts reshuffle it,
and a run is the same every time. Anything else is answered as the tests expect: ``a+b`` sums
right, a question ending in ``?`` yes or no by its hash, other text echoed.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from crucible_dagster.datasets.benchmarks import GSM8K_ANSWER, SAMPLES

#: the share of known questions each simulated model answers right (before the few-shot bonus)
MODEL_ACCURACY = {"qa-small": 0.45, "qa-large": 0.85}
#: the accuracy of a model name the server does not list
DEFAULT_ACCURACY = 0.6
FEW_SHOT_BONUS = 0.1
#: the answer key's files are read up to this size each (a larger one is refused)
MAX_KEY_FILE_BYTES = 16 * 2**20


def _fraction(*parts: str) -> float:
    """A number in [0, 1) fixed by ``parts``: the same parts, the same number on any machine."""
    digest = hashlib.sha256("\x1f".join(parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def read_answer_key(paths: Iterable[Path]) -> dict[str, str]:
    """question -> the number after ``####``, from GSM8K JSONL files (rows without one skipped);
    a file that cannot be read is a ValueError naming it and the line."""
    key: dict[str, str] = {}
    for path in paths:
        if path.stat().st_size > MAX_KEY_FILE_BYTES:
            raise ValueError(f"{path}: over {MAX_KEY_FILE_BYTES} bytes, not an answer key")
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                question, solution = str(row["question"]).strip(), str(row["answer"])
            except (ValueError, KeyError, TypeError) as exc:
                raise ValueError(
                    f"{path}: line {number}: expected GSM8K's {{question, answer}} JSON ({exc})"
                ) from None
            found = GSM8K_ANSWER.search(solution)
            if question and found:
                key[question] = found.group(1).replace(",", "")
    return key


@functools.cache
def shipped_answer_key() -> dict[str, str]:
    """The answer key of every GSM8K sample the project ships (all splits)."""
    return read_answer_key(sorted((SAMPLES / "gsm8k").glob("*.jsonl")))


def _text(message: Any) -> str:
    return str(message.get("content", "")) if isinstance(message, dict) else ""


def _known_question(text: str, key: dict[str, str]) -> str | None:
    """The key's question the message asks (the whole message, or a part of it)."""
    stripped = text.strip()
    if stripped in key:
        return stripped
    return next((q for q in key if q in text), None)


def _wrong(reference: str, model: str, question: str) -> str:
    """A wrong number near the reference: off by 1 to 9, up or down, fixed by the hash."""
    offset = 1 + int(_fraction("offset", model, question) * 9)
    if _fraction("sign", model, question) < 0.5:
        offset = -offset
    try:
        value = float(reference) + offset
    except ValueError:
        return f"{reference}{offset}"
    return f"{value:g}"


def gsm8k_answer(model: str, messages: list[dict[str, Any]], key: dict[str, str]) -> str | None:
    """The simulated model's answer to a known GSM8K question, None when none is asked."""
    question = _known_question(_text(messages[-1]) if messages else "", key)
    if question is None:
        return None
    system = next((_text(m) for m in messages if m.get("role") == "system"), "")
    shots = sum(1 for m in messages[:-1] if m.get("role") == "assistant")
    accuracy = MODEL_ACCURACY.get(model, DEFAULT_ACCURACY) + (FEW_SHOT_BONUS if shots else 0.0)
    right = _fraction(model, system, _text(messages[-1])) < accuracy
    number = key[question] if right else _wrong(key[question], model, question)
    return f"The answer is {number}."


def default_answer(
    model: str, messages: list[dict[str, Any]], key: dict[str, str] | None = None
) -> str:
    """A known GSM8K question as the model would answer it; 'a+b' summed; a question ending in
    '?' answered yes or no by its hash (so models disagree sometimes); other text echoed."""
    solved = gsm8k_answer(model, messages, shipped_answer_key() if key is None else key)
    if solved is not None:
        return solved
    text = _text(messages[-1]) if messages else ""
    if "+" in text and all(part.strip().isdigit() for part in text.split("+")):
        return str(sum(int(part) for part in text.split("+")))
    digest = hashlib.sha256(f"{model}|{text}".encode()).digest()
    if text.endswith("?"):
        return "yes" if digest[0] % 2 else "no"
    return f"echo: {text}"
