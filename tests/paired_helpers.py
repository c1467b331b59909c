"""Prompt variants with a known answer for the paired sweep tests.

``SeedSums`` writes ``count`` addition questions whose input starts with the sweep's prompt;
``answer`` is a callable backend that answers question ``i`` right under ``prompt`` exactly
when ``i`` is in ``RIGHT[prompt]``, so which samples differ between prompts is known.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from crucible_dagster.runtime.context import Context
from crucible_dagster.runtime.stage import Stage, StageOptions

#: WaveMetrics' documented Cochran example (StatsCochranTest, "wave2"): 9 blocks x 5 groups,
#: published Q = 10.3636, p = 0.0347281
WAVE2 = [
    [0, 0, 0, 0, 1],
    [0, 0, 0, 0, 1],
    [0, 0, 0, 1, 1],
    [0, 1, 0, 1, 1],
    [1, 1, 0, 1, 1],
    [1, 1, 0, 1, 1],
    [1, 1, 0, 1, 0],
    [1, 1, 0, 0, 0],
    [1, 0, 0, 0, 0],
]

RIGHT: dict[str, set[int]] = {
    # 30 questions: both right on 0-13, only "careful" on 14-19 (6 discordant), both wrong after
    "careful": set(range(20)),
    "terse": set(range(14)),
    **{f"g{j + 1}": {i for i, row in enumerate(WAVE2) if row[j]} for j in range(5)},
}


class SumOptions(StageOptions):
    count: int = Field(default=30, ge=1)
    prompt: str = "careful"
    #: ids as integers instead of text (the hostile case of ids that differ in type)
    int_ids: bool = False
    #: the first question to write (partly overlapping samples between trials)
    start: int = 0


class SeedSums(Stage):
    name = "seed_sums"
    Options = SumOptions

    def run(self, ctx: Context, options: SumOptions) -> Context:
        examples: list[dict[str, Any]] = []
        for i in range(options.start, options.start + options.count):
            a, b = 3 * i + 1, 7 * i + 2
            sample: Any = i if options.int_ids else f"q{i}"
            text = f"{options.prompt}|{i}|{a}+{b}"
            examples.append({"id": sample, "input": text, "output": str(a + b)})
        return ctx.assign("examples", examples)


def miss(index: int) -> int:
    """How far off a wrong answer to question ``index`` is (1 to 4): graded errors."""
    return 1 + index % 4


def answer(inputs: list[str]) -> list[str]:
    """A callable backend: the sum, right for the prompt's questions and off by ``miss``
    elsewhere (a prompt it does not know raises, so every sample of that trial fails)."""
    answers = []
    for text in inputs:
        prompt, index, question = text.split("|")
        a, b = (int(x) for x in question.split("+"))
        answers.append(str(a + b + (0 if int(index) in RIGHT[prompt] else miss(int(index)))))
    return answers
