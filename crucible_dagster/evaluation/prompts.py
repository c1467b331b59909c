"""``predict.options.prompt``: the chat messages each sample is asked with.

A prompt is a user template, an optional system template and optional few-shot examples::

    prompt:
      name: terse                      # the prompt's id in sweep trial ids and reports
      system: "Answer with a number."
      user: "Q: {{ question }}\\nA:"
      few_shot: {split: train, n: 3}   # or {file: shots.jsonl, n: 3}; seed: the run's

A plain string is the user template. Each sample's messages are ``[system], (user, assistant)
per shot, user``; the shots are drawn once per run with the seed (``few_shot.seed``, else the
experiment's), so every sample and every prompt of a sweep trial sees the same shots, and a
re-run the same ones. ``render_requests`` renders a predict stage's requests without sending
them (a dry run counts their tokens).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from pydantic import Field, field_validator, model_validator

from crucible_dagster.backends.base import Request
from crucible_dagster.common.templates import (
    CheckedTemplate,
    TemplateError,
    TemplateText,
    check_template,
    missing_fields,
    render,
)
from crucible_dagster.evaluation.few_shot import FewShot, draw_shots
from crucible_dagster.evaluation.per_sample import example_rows
from crucible_dagster.experiment.names import check_name
from crucible_dagster.runtime.stage import StageOptions

if TYPE_CHECKING:
    from crucible_dagster.experiment.ir import Experiment

Message = dict[str, str]


class PromptSpec(StageOptions):
    """One prompt; a plain string is ``{user: <string>}``."""

    name: str | None = Field(
        default=None,
        description="The prompt's name: a sweep over prompts names its trials by it.",
    )
    user: TemplateText = Field(
        description="Jinja2 template of the user message, over the example's fields."
    )
    system: TemplateText | None = Field(
        default=None, description="Jinja2 template of the system message."
    )
    few_shot: FewShot | None = Field(
        default=None, description="Solved examples put before the question: {split|file, n}."
    )

    @model_validator(mode="before")
    @classmethod
    def _plain_string(cls, value: Any) -> Any:
        if isinstance(value, str):
            return {"user": value}
        if not isinstance(value, Mapping | PromptSpec):
            raise ValueError(
                f"expected a template (text) or a mapping {{user, system, few_shot, name}}, "
                f"found {type(value).__name__}"
            )
        return value

    @field_validator("name")
    @classmethod
    def _name(cls, value: str | None) -> str | None:
        return None if value is None else check_name(value, "prompt name")

    def templates(self) -> dict[str, CheckedTemplate]:
        """Every template of this prompt by its field path (``user``, ``few_shot.assistant``)."""
        found = {"user": check_template(self.user, "user")}
        if self.system is not None:
            found["system"] = check_template(self.system, "system")
        if self.few_shot is not None:
            found["few_shot.assistant"] = check_template(
                self.few_shot.assistant, "few_shot.assistant"
            )
        return found

    def field_problems(self, fields: set[str] | None, shot_fields: set[str] | None) -> list[str]:
        """``field: message`` for each name a template reads that the examples (or the shots)
        do not have; nothing is said of a side whose fields are unknown (None)."""
        problems = []
        for path, template in self.templates().items():
            shot_side = path == "few_shot.assistant"
            known = shot_fields if shot_side else fields
            if known is None:
                continue
            missing = missing_fields(template, known)
            if path == "user" and shot_fields is not None and self.few_shot is not None:
                missing = sorted({*missing, *missing_fields(template, shot_fields)})
            if missing:
                whose = "the few-shot examples" if shot_side else "the examples"
                line = min(template.line_of(m) or 1 for m in missing)
                problems.append(
                    f"{path}: line {line} of the template reads {', '.join(map(repr, missing))}, "
                    f"which {whose} do not have (their fields: {', '.join(sorted(known)) or 'none'})"
                )
        return problems


def as_prompt(value: Any) -> PromptSpec | None:
    """``prompt`` as written (None, a string or a mapping) as a PromptSpec."""
    if value is None or isinstance(value, PromptSpec):
        return value
    return PromptSpec.model_validate(value)


def messages_for(
    prompt: PromptSpec, fields: Mapping[str, Any], shots: Sequence[Mapping[str, Any]], where: str
) -> list[Message]:
    """One sample's messages: system, each shot as a user and an assistant turn, the question."""
    messages: list[Message] = []
    if prompt.system is not None:
        messages.append(
            {"role": "system", "content": render(prompt.system, fields, f"{where} system")}
        )
    for index, shot in enumerate(shots):
        at = f"few-shot example {index}"
        messages.append({"role": "user", "content": render(prompt.user, shot, f"{at} user")})
        assistant = prompt.few_shot.assistant if prompt.few_shot else "{{ reference }}"
        messages.append(
            {"role": "assistant", "content": render(assistant, shot, f"{at} few_shot.assistant")}
        )
    messages.append({"role": "user", "content": render(prompt.user, fields, f"{where} user")})
    return messages


def user_text(messages: Sequence[Message]) -> str:
    """What a backend that takes text is sent: the last user message."""
    return messages[-1]["content"]


def messages_json(messages: Sequence[Message]) -> str:
    """The messages as recorded in the per-sample table's ``messages`` column."""
    return json.dumps(list(messages), ensure_ascii=False)


def render_all(
    prompt: PromptSpec,
    samples: Sequence[tuple[str, Mapping[str, Any]]],
    seed: int,
    experiment: Experiment | None,
) -> dict[str, list[Message]]:
    """Every sample's messages, keyed by sample id, rendered before any is sent: a template
    that fails on one sample is an error naming it (``prompt.user: sample '7': ...``)."""
    shots = draw_shots(prompt.few_shot, seed, experiment) if prompt.few_shot is not None else []
    rendered = {}
    for sample_id, fields in samples:
        try:
            rendered[sample_id] = messages_for(prompt, fields, shots, f"sample {sample_id!r}")
        except TemplateError as exc:
            raise TemplateError(f"prompt: {exc}") from None
    return rendered


def render_requests(
    examples: Any,
    options: Any,
    seed: int,
    experiment: Experiment | None = None,
) -> list[Request]:
    """The requests a predict stage would send for ``examples`` (a DataFrame of examples, index
    = sample ids, or a list of dicts), without sending them; for a dry run's token count.

    ``options``: the stage's PredictOptions or its options mapping (``prompt``, ``input_field``
    are read). With a prompt each request's ``messages`` are the chat messages and its ``input``
    the user message; without, ``input`` is the example's input field, as predict sends it."""
    read = options.get if isinstance(options, Mapping) else lambda k, d=None: getattr(options, k, d)
    prompt = as_prompt(read("prompt"))
    samples = example_rows(examples, "examples")
    if prompt is None:
        field = read("input_field") or "input"
        missing = next((i for i, f in samples if field not in f), None)
        if missing is not None:
            raise TemplateError(f"sample {missing!r} has no field {field!r} (set input_field)")
        return [Request(sample_id, fields[field]) for sample_id, fields in samples]
    rendered = render_all(prompt, samples, seed, experiment)
    return [Request(i, user_text(rendered[i]), rendered[i]) for i, _ in samples]
