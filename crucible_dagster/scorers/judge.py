"""``judge``: a model reads a rubric about each prediction and answers a score.

The rubric (and an optional system message) is a Jinja2 template, rendered in Jinja2's sandbox
with strict undefined variables: ``prediction``, ``reference``, ``example`` (the sample's own
fields, when the score stage found them), ``sample_id`` and ``variant``. Its syntax, and any
other name it reads, are refused at ``validate``. The judge is any backend of the backend
registry, so its requests are counted, cached on disk and costed as the predict stage's are
(``usage`` in the metrics); a rubric two samples fill alike (two variants that gave the same
answer) is asked once.

Its answer is read robustly: a ``pattern`` of your own; else JSON with a ``score``; else
"score: 7" / "rating = 4.5"; else "7/10"; else the answer is the number alone. A score outside
``scale``, an answer with none, or a request that failed is that sample's error, never a crash.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Sequence
from typing import Annotated, Any

from pydantic import Field, field_validator, model_validator

from crucible_dagster.backends.base import Budgeted, Request
from crucible_dagster.backends.registry import BackendError, build_backend, check_backend
from crucible_dagster.common.field_errors import as_field_error, checked_by
from crucible_dagster.common.templates import TemplateError, check_template, render
from crucible_dagster.experiment.ir import BackendRef
from crucible_dagster.scorers.base import (
    RegexOption,
    Sample,
    Scored,
    ScoreProblem,
    Scorer,
    ScorerOptions,
    stopped,
    user_pattern,
)
from crucible_dagster.scorers.numeric import NUMBER, as_number

#: how much of a judge's answer is searched for its score
MAX_ANSWER_CHARS = 100_000
#: the "{" of an answer tried as a JSON object: 100,000 unclosed ones took seconds per sample
MAX_JSON_TRIES = 32
LABELLED = re.compile(r"\b(?:score|rating|grade)\b\W{0,3}(?:is\W{0,3})?", re.IGNORECASE)


#: what a rubric may read
RUBRIC_NAMES = ("prediction", "reference", "example", "sample_id", "variant")


def _template(value: str | None, field: str) -> str | None:
    """A template that parses in the sandbox (``common/templates.py``, the one prompts use) and
    reads only what a rubric has: the message names the line of a syntax error, of a refused
    attribute or of a name no sample will have."""
    if value is None:
        return None
    with as_field_error(TemplateError, f"{field}: "):
        checked = check_template(value, field)
    unknown = sorted(checked.variables - set(RUBRIC_NAMES))
    if unknown:
        name = unknown[0]
        raise ValueError(
            f"line {checked.line_of(name)} of the template reads {name!r}, which a rubric does "
            f"not have: it reads {', '.join(RUBRIC_NAMES)} (the sample's own fields as "
            f"example.<field>, e.g. example.{name})"
        )
    return value


#: a score bound (scale: [0, inf] took any number the judge wrote, 1e308 included)
Finite = Annotated[float, Field(allow_inf_nan=False)]


class JudgeOptions(ScorerOptions):
    # check_backend names the field already: "backend.options.model: ..."
    backend: Annotated[BackendRef, checked_by(check_backend, BackendError, "backend.")] = Field(
        description="The judge: any backend ({id, options, endpoint_url})."
    )
    rubric: str = Field(description="The user message: a Jinja2 template of the sample.")
    system: str | None = Field(default=None, description="A system message template.")
    scale: tuple[Finite, Finite] = Field(
        default=(1.0, 10.0), description="[lowest, highest] score the rubric asks for."
    )
    pattern: RegexOption | None = Field(
        default=None, description="A regular expression whose group holds the score."
    )

    @field_validator("rubric", "system")
    @classmethod
    def _parses(cls, value: str | None, info: Any) -> str | None:
        return _template(value, info.field_name)

    @model_validator(mode="after")
    def _ordered(self) -> JudgeOptions:
        if not self.scale[0] < self.scale[1]:
            raise ValueError(f"scale: expected [lowest, highest], found {list(self.scale)}")
        return self


def _json_score(text: str) -> float | None:
    decoder = json.JSONDecoder()
    openings = (i for i, c in enumerate(text) if c == "{")
    for start in itertools.islice(openings, MAX_JSON_TRIES):  # each try may read to the end
        try:
            found = decoder.raw_decode(text, start)[0]
        except (ValueError, RecursionError):
            continue
        value = found.get("score") if isinstance(found, dict) else None
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str) and NUMBER.fullmatch(value.strip()):
            return as_number(NUMBER.fullmatch(value.strip()))  # type: ignore[arg-type]
    return None


def parse_score(
    answer: str, scale: tuple[float, float], pattern: str | None = None
) -> float | None:
    """The score in a judge's answer, or None when it has none inside ``scale``."""
    text = answer[:MAX_ANSWER_CHARS]
    candidates: list[float | None] = []
    if pattern is not None:
        matches = stopped(user_pattern(pattern), "finditer", text)
        group = matches[-1].group(1 if matches and matches[-1].re.groups else 0) if matches else ""
        number = NUMBER.search(group or "")
        candidates.append(as_number(number) if number else None)
    else:
        candidates.append(_json_score(text))
        labelled = [NUMBER.match(text, m.end()) for m in LABELLED.finditer(text)]
        candidates += [as_number(m) for m in reversed(labelled) if m]
        high = f"{scale[1]:g}"
        out_of = re.search(rf"({NUMBER.pattern})\s*(?:/|out of)\s*{re.escape(high)}\b", text)
        candidates.append(as_number(NUMBER.match(out_of.group(1))) if out_of else None)  # type: ignore[arg-type]
        alone = NUMBER.fullmatch(text.strip().rstrip("."))
        candidates.append(as_number(alone) if alone else None)
    for value in candidates:
        if value is not None and scale[0] <= value <= scale[1]:
            return value
    return None


class Judge(Scorer[JudgeOptions]):
    """A backend answers a score for each sample to a rubric."""

    description = "A model (any backend) scores each prediction to a rubric template"
    needs_reference = False
    reads_examples = True
    sends_requests = True

    def __init__(self, options: JudgeOptions):
        super().__init__(options)
        self._usage: dict[str, Any] = {"requests": 0, "cached": 0, "errors": 0, "cost": 0.0}
        self._ledger: Any = None

    def with_budget(self, ledger: Any) -> None:
        self._ledger = ledger

    def _messages(self, sample: Sample) -> list[dict[str, str]]:
        values = {
            "prediction": sample.prediction,
            "reference": sample.reference,
            "example": sample.example,
            "sample_id": sample.sample_id,
            "variant": sample.variant,
        }
        options = self.options
        messages = [{"role": "user", "content": render(options.rubric, values, "rubric")}]
        if options.system is not None:
            system = render(options.system, values, "system")
            messages.insert(0, {"role": "system", "content": system})
        return messages

    def score_all(self, samples: Sequence[Sample]) -> list[Scored]:
        """One request per distinct rubric (variants that answered alike ask once), sent
        together so the backend's concurrency, retries and cache apply."""
        scored: dict[int, Scored] = {}
        asked: dict[str, list[int]] = {}  # the rendered messages -> the samples asking them
        requests: list[Request] = []
        for index, sample in enumerate(samples):
            try:
                messages = self._messages(sample)
            except TemplateError as exc:  # a variable this sample lacks, a sandbox refusal
                scored[index] = Scored(None, f"the rubric cannot be filled: {exc}")
                continue
            key = json.dumps(messages, sort_keys=True)
            if key not in asked:
                asked[key] = []
                requests.append(Request(str(len(requests)), messages))
            asked[key].append(index)
        if requests:
            backend = build_backend(self.options.backend, "judge.backend")
            if self._ledger is not None and isinstance(backend, Budgeted):
                backend.with_budget(self._ledger)  # a judge's calls spend the run's budget too
            groups = list(asked.values())
            for response in backend.predict(requests):
                answer = self._read(response)
                scored.update({i: answer for i in groups[int(response.sample_id)]})
        return [scored[i] for i in range(len(samples))]

    def _read(self, response: Any) -> Scored:
        usage = self._usage
        usage["requests"] += (0 if response.cached else 1) + response.extra_requests
        usage["cached"] += bool(response.cached)
        usage["cost"] += response.cost or 0.0
        for field in ("prompt_tokens", "completion_tokens"):
            usage[field] = usage.get(field, 0) + (getattr(response, field) or 0)
        if response.error is not None:
            usage["errors"] += 1
            return Scored(None, f"the judge failed: {str(response.error)[:300]}")
        answer = str(response.output)
        try:
            value = parse_score(answer, self.options.scale, self.options.pattern)
        except ScoreProblem as exc:  # the pattern backtracked past its time on this answer
            usage["errors"] += 1
            return Scored(None, f"the judge's answer: {exc}")
        if value is None:
            usage["errors"] += 1
            low, high = self.options.scale
            return Scored(
                None, f"the judge's answer has no score in [{low:g}, {high:g}]: {answer[:200]!r}"
            )
        return Scored(value)

    def usage(self) -> dict[str, Any]:
        return dict(self._usage)
