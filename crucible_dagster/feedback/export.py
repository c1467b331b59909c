"""Feedback kept for fine-tuning: the events as JSON Lines, and preference pairs (a prompt, the
answer users chose and the one they rejected) for DPO-style training.

Pairs come from two signals: a correction (the user's text chosen over the model's output), and
for one input, an answer rated (or thumbed) higher than another answer to it.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from crucible_dagster.common.files import atomic_write_text


def preference_pairs(events: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    pairs = [
        {
            "prompt": e["input"],
            "chosen": e["feedback_value"],
            "rejected": e["output"],
            "source": "correction",
            "event_ids": [e["id"]],
        }
        for e in events
        if e["feedback_type"] == "correction"
        and e["output"] is not None
        and e["feedback_value"] != e["output"]
    ]
    by_input: dict[str, dict[str, list[tuple[float, str]]]] = defaultdict(lambda: defaultdict(list))
    for e in events:
        score = _score(e)
        if score is not None and e["input"] is not None and e["output"] is not None:
            by_input[e["input"]][e["output"]].append((score, e["id"]))
    for prompt, answers in by_input.items():
        ranked = sorted(
            ((sum(s for s, _ in votes) / len(votes), output, [i for _, i in votes])
             for output, votes in answers.items()),
            key=lambda item: item[0],
        )  # fmt: skip
        best, worst = ranked[-1], ranked[0]
        if best[0] > worst[0]:
            pairs.append({"prompt": prompt, "chosen": best[1], "rejected": worst[1],
                          "source": "rating", "event_ids": sorted(best[2] + worst[2])})  # fmt: skip
    return pairs


def _score(event: dict[str, Any]) -> float | None:
    """A thumb as 1 or 0, a rating as its number; other kinds rank nothing."""
    if event["feedback_type"] == "thumbs":
        return 1.0 if event["feedback_value"] else 0.0
    if event["feedback_type"] == "rating":
        return float(event["feedback_value"])
    return None


def write_jsonl(path: Path, records: Iterable[dict[str, Any]]) -> Path:
    text = "".join(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n" for r in records)
    return atomic_write_text(path, text)
