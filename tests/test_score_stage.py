"""The score stage with several scorers: one column per scorer, a mean per scorer and variant,
and the bench comparing each score column with its own paired test; the old ``metric:`` form
unchanged; a judge answering through the bundled OpenAI-compatible test server."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from crucible_dagster.contrib.llm_server import llm_server
from crucible_dagster.evaluation.per_sample import as_table
from crucible_dagster.experiment.loading import loads_experiment
from crucible_dagster.runtime.runner import RunResult, run

N = 30


def predictions(wrong_b: int = 6) -> pd.DataFrame:
    """Two variants on the same 30 questions: ``a`` right on all, ``b`` half right on the first
    ``wrong_b`` ("answer" for "answer i") and right on the rest."""
    rows: list[dict[str, Any]] = []
    for variant in ("a", "b"):
        for i in range(N):
            answer = "answer" if variant == "b" and i < wrong_b else f"answer {i}"
            rows.append(
                {
                    "variant": variant,
                    "sample_id": f"s{i:02d}",
                    "prediction": answer,
                    "reference": f"answer {i}",
                    "error": None,
                }
            )
    return as_table(rows)


def run_stages(tmp_path: Path, yaml: str, assigns: dict[str, Any]) -> RunResult:
    experiment = loads_experiment("id: scoring\nseed: 7\npipeline:\n" + yaml)
    return run(experiment, assigns=assigns, artifacts_root=str(tmp_path / "artifacts"), run_id="r")


SEVERAL = (
    "  - name: score\n    options:\n      scorers:\n"
    "        - {name: em, id: exact_match}\n        - {name: f1, id: token_f1}\n"
    "        - {id: bleu}\n"
    "  - name: bench\n"
)


@pytest.mark.slow
def test_several_scorers_give_a_column_and_a_mean_each(tmp_path: Path) -> None:
    result = run_stages(tmp_path, SEVERAL, {"predictions": predictions()})
    assert result.failure is None, result.failure
    table = result.context.assigns["predictions"]
    assert {"score", "score_em", "score_f1", "score_bleu", "score_em_error"} <= set(table.columns)
    assert table["score"].equals(table["score_em"])  # the first scorer is the primary score
    metric = result.context.metrics["score"]
    assert (metric["metric"], metric["primary"]) == ("exact_match", "em")
    assert metric["variants"]["b"] == {"mean": 24 / 30, "n": 30, "failed": 0, "errors": 0}
    f1 = metric["scorers"]["f1"]
    assert not f1["binary"] and f1["variants"]["a"]["mean"] == 1.0
    # "answer" vs "answer i": P 1, R 1/2, F1 2/3 on 6 samples, 1 on 24
    assert f1["variants"]["b"]["mean"] == pytest.approx((6 * 2 / 3 + 24) / 30)
    bleu = metric["scorers"]["bleu"]["variants"]
    assert bleu["a"]["mean"] == pytest.approx(100.0)  # sentence BLEU, effective order
    # the corpus BLEU of two-word sentences has no 3- and 4-grams: sacrebleu says 0
    assert bleu["a"]["corpus"] == bleu["b"]["corpus"] == 0.0
    on_disk = pd.read_parquet(tmp_path / "artifacts" / "scoring" / "r" / "predictions.parquet")
    assert list(on_disk["score_f1"]) == list(table["score_f1"])


@pytest.mark.slow
def test_the_bench_compares_each_score_column_with_its_own_test(tmp_path: Path) -> None:
    """0/1 (em): McNemar's exact test on the 6 discordant samples, p = 2 · 0.5⁶ = 0.03125,
    with the paired bootstrap beside; continuous (f1, bleu): Wilcoxon or a paired t."""
    result = run_stages(tmp_path, SEVERAL, {"predictions": predictions()})
    bench = result.context.metrics["bench"]
    primary = {row["test"]: row for row in bench["comparisons"]}
    assert set(primary) == {"mcnemar", "bootstrap"}
    assert primary["mcnemar"]["p_value"] == pytest.approx(0.03125)
    by_scorer = bench["by_scorer"]
    assert set(by_scorer) == {"f1", "bleu"}
    for name in ("f1", "bleu"):
        (row,) = by_scorer[name]["comparisons"]
        assert row["test"] in ("wilcoxon", "paired_ttest"), row
        assert row["n_a"] == row["n_b"] == N
    # 6 equal differences (1/3) and 24 zeros: as R's wilcox.test, zeros dropped, ties rule out
    # the exact p, so the normal approximation with tie correction and continuity correction:
    # V = 21, mean 10.5, var 6·7·13/24 − (6³ − 6)/48 = 18.375, z = 10/√18.375, p = 0.019656
    f1_row = by_scorer["f1"]["comparisons"][0]
    assert f1_row["test"] == "wilcoxon" and f1_row["p_value"] == pytest.approx(0.019656, abs=1e-6)
    table = result.context.assigns["bench_comparisons"]
    assert set(table["scorer"]) == {"em", "f1", "bleu"}
    assert result.context.trace is not None
    decisions = [e.decision for e in result.context.trace.events if e.type == "decision_made"]
    assert any(d.startswith("[f1] ") for d in decisions), decisions


def test_one_scorer_keeps_the_bench_as_it_was(tmp_path: Path) -> None:
    yaml = "  - {name: score, options: {metric: contains}}\n  - name: bench\n"
    result = run_stages(tmp_path, yaml, {"predictions": predictions()})
    assert result.failure is None, result.failure
    metric = result.context.metrics["score"]
    assert metric["metric"] == "contains" and set(metric["scorers"]) == {"contains"}
    assert metric["variants"]["b"]["mean"] == pytest.approx(24 / 30)
    assert "scores_by_scorer" not in result.context.assigns
    bench = result.context.metrics["bench"]
    assert "by_scorer" not in bench
    assert "scorer" not in result.context.assigns["bench_comparisons"].columns


def test_a_failed_sample_scores_0_when_binary_and_is_left_out_when_continuous(
    tmp_path: Path,
) -> None:
    frame = predictions()
    frame.loc[0, ["prediction", "error"]] = [None, "HTTP 500"]
    yaml = "  - name: score\n    options:\n      scorers: [{id: exact_match}, {id: token_f1}]\n"
    result = run_stages(tmp_path, yaml, {"predictions": frame})
    variants = result.context.metrics["score"]["scorers"]
    assert variants["exact_match"]["variants"]["a"] == {
        "mean": 29 / 30, "n": 30, "failed": 1, "errors": 0}  # fmt: skip
    assert variants["token_f1"]["variants"]["a"] == {
        "mean": 1.0, "n": 29, "failed": 1, "errors": 0}  # fmt: skip


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ("{metric: contains, scorers: [{id: bleu}]}", "metric is the one-scorer form"),
        ("{case_sensitive: true, scorers: [{id: exact_match}]}", "case_sensitive is the one"),
        ("{scorers: []}", "expected at least one scorer"),
        ("{scorers: [{id: bleu}, {id: bleu}]}", "would both write the column 'score_bleu'"),
        ("{scorers: [{name: x_error, id: bleu}, {name: x, id: chrf}]}", "'score_x_error'"),
    ],
)
def test_scorer_lists_that_cannot_work_are_refused_before_the_run(
    tmp_path: Path, options: str, message: str
) -> None:
    result = run_stages(tmp_path, f"  - {{name: score, options: {options}}}\n", {})
    assert result.failure is not None and message in result.failure.message
    assert "Traceback" not in result.failure.message


# --- the judge, against the bundled test server ------------------------------------------------


def judge_answer(model: str, messages: list[dict[str, Any]]) -> str:
    """A judge that reads its rubric: 9 for a full answer, 'unsure' (no score) for 'answer'."""
    text = str(messages[-1]["content"])
    if text.endswith("Answer: answer"):  # Jinja drops the template's last newline
        return "I am unsure about this one."
    return "The reasoning is sound.\nScore: 9" if "Question: what is" in text else "Score: 2"


def judge_yaml(url: str, cache: Path, rubric: str) -> str:
    return (
        "  - name: score\n    options:\n      scorers:\n        - {name: em, id: exact_match}\n"
        "        - name: judge\n          id: judge\n          options:\n"
        f"            rubric: {json.dumps(rubric)}\n"
        "            system: 'You grade answers from 1 to 10.'\n"
        f"            backend: {{id: openai_compatible, endpoint_url: '{url}', "
        f"options: {{model: judge-m, cache_dir: '{cache}', max_retries: 0, "
        "price_per_million_input: 1.0, price_per_million_output: 2.0}}\n"
    )


RUBRIC = "Question: {{ example.question }}\nReference: {{ reference }}\nAnswer: {{ prediction }}\n"


def examples() -> list[dict[str, Any]]:
    return [{"id": f"s{i:02d}", "question": f"what is {i}?"} for i in range(N)]


def test_the_judge_scores_through_a_backend_counted_cached_and_costed(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    with llm_server() as (url, server):
        server.answer = judge_answer
        assigns = {"predictions": predictions(), "examples": examples()}
        first = run_stages(tmp_path, judge_yaml(url, cache, RUBRIC), assigns)
        assert first.failure is None, first.failure
        sent = server.requests["judge-m"]
        again = run_stages(tmp_path / "again", judge_yaml(url, cache, RUBRIC), assigns)
        assert server.requests["judge-m"] == sent  # the second run's answers came from the cache
    assert sent == N + 6  # 'b' asks the same rubric as 'a' for the 24 samples they share
    bodies = [b["messages"] for b in server.bodies]
    assert all(
        b[0] == {"role": "system", "content": "You grade answers from 1 to 10."} for b in bodies
    )
    contents = [b[1]["content"] for b in bodies]
    assert "Question: what is 0?\nReference: answer 0\nAnswer: answer 0" in contents
    judge = first.context.metrics["score"]["scorers"]["judge"]
    assert judge["variants"]["a"] == {"mean": 9.0, "n": N, "failed": 0, "errors": 0}
    assert judge["variants"]["b"] == {"mean": 9.0, "n": N - 6, "failed": 0, "errors": 6}
    usage = judge["usage"]
    assert usage["requests"] == sent and usage["cached"] == 0 and usage["errors"] == 6
    assert usage["cost"] > 0 and usage["prompt_tokens"] > 0
    assert again.context.metrics["score"]["scorers"]["judge"]["usage"]["cached"] == N + 6
    table = first.context.assigns["predictions"]
    errors = table.loc[table["variant"] == "b", "score_judge_error"].dropna()
    assert len(errors) == 6 and errors.iloc[0].startswith(
        "the judge's answer has no score in [1, 10]"
    )


def test_a_rubric_variable_a_sample_lacks_is_that_samples_error(tmp_path: Path) -> None:
    with llm_server() as (url, server):
        rubric = "Q: {{ example.question }} {{ example.topic }}"
        result = run_stages(
            tmp_path, judge_yaml(url, tmp_path / "c", rubric),
            {"predictions": predictions(), "examples": examples()},
        )  # fmt: skip
        assert server.requests["judge-m"] == 0
    assert result.failure is None, result.failure
    judge = result.context.metrics["score"]["scorers"]["judge"]["variants"]["a"]
    assert judge["mean"] is None and judge["errors"] == N
    assert "the rubric cannot be filled" in judge["undefined"] and "topic" in judge["undefined"]


def test_a_judge_that_cannot_be_reached_is_each_samples_error(tmp_path: Path) -> None:
    from tests.hostile.test_http_backend import free_port

    url = f"http://127.0.0.1:{free_port()}/v1"
    result = run_stages(
        tmp_path, judge_yaml(url, tmp_path / "c", RUBRIC),
        {"predictions": predictions(), "examples": examples()},
    )  # fmt: skip
    assert result.failure is None, result.failure
    table = result.context.assigns["predictions"]
    assert table["score_judge"].isna().all()
    assert table["score_judge_error"].str.startswith("the judge failed: ").all()
    assert result.context.metrics["score"]["variants"]["a"]["mean"] == 1.0  # em still scored


@pytest.mark.parametrize(
    ("rubric", "message"),
    [
        ("{{ prediction ", "template syntax error at line 1 of the template"),
        ("{% for x in y %}", "template syntax error"),
        ("Q: {{ question }}", "line 1 of the template reads 'question', which a rubric does not"),
    ],
)
def test_a_rubric_that_does_not_parse_is_refused_before_the_run(
    tmp_path: Path, rubric: str, message: str
) -> None:
    result = run_stages(tmp_path, judge_yaml("http://127.0.0.1:9/v1", tmp_path, rubric), {})
    assert result.failure is not None and message in result.failure.message


def test_the_sandbox_refuses_what_a_rubric_must_not_reach(tmp_path: Path) -> None:
    """What can be seen in the rubric's text is refused before the run (the same sandbox
    checks as a predict prompt's); what only a sample's values show is that sample's error."""
    with llm_server() as (url, server):
        seen = run_stages(
            tmp_path,
            judge_yaml(url, tmp_path / "c", "{{ prediction.__class__.__mro__ }}"),
            {"predictions": predictions()},
        )
        assert seen.failure is not None and "'__mro__' is refused" in seen.failure.message
        built = "{{ prediction|attr('_' ~ '_class__') }}"  # a name only rendering shows
        result = run_stages(
            tmp_path / "built",
            judge_yaml(url, tmp_path / "c", built),
            {"predictions": predictions()},
        )
        assert server.requests["judge-m"] == 0
    judge = result.context.metrics["score"]["scorers"]["judge"]["variants"]["a"]
    assert judge["mean"] is None and "the rubric cannot be filled" in judge["undefined"]
    assert "refused by the sandbox" in judge["undefined"]


@pytest.mark.slow
def test_the_report_shows_each_further_score_columns_comparison(tmp_path: Path) -> None:
    from crucible_dagster.reports.markdown import bench_markdown

    result = run_stages(tmp_path, SEVERAL, {"predictions": predictions()})
    text = "\n".join(bench_markdown(result.context.metrics["bench"]))
    assert "### Score f1" in text and "### Score bleu" in text
    f1_part = text.split("### Score f1")[1].split("### Score bleu")[0]
    assert "| wilcoxon |" in f1_part and "- a vs b: wilcoxon: paired design" in f1_part


@pytest.mark.slow
def test_the_html_report_shows_them_too_with_user_text_escaped(tmp_path: Path) -> None:
    from crucible_dagster.reports.html import bench_html

    yaml = SEVERAL.replace("{name: f1, id: token_f1}", "{name: f1_x, id: token_f1}")
    result = run_stages(tmp_path, yaml, {"predictions": predictions()})
    bench = result.context.metrics["bench"]
    page = bench_html(bench)
    assert "<h3>Score f1_x</h3>" in page and "<h3>Score bleu</h3>" in page
    assert "wilcoxon" in page.split("<h3>Score f1_x</h3>")[1]
    hostile = bench_html(bench | {"by_scorer": {"<b>x</b>": {"no_data": True, "reason": "<i>"}}})
    assert "<b>x</b>" not in hostile and "&lt;b&gt;x&lt;/b&gt;" in hostile


@pytest.mark.slow  # fills ~120,000 loop turns per sample before the cap refuses it (~1 s)
def test_a_rubric_over_the_size_cap_once_filled_is_each_samples_error(tmp_path: Path) -> None:
    """What only filling shows (a loop writing a huge message): that sample's error, nothing sent.

    Four questions, not the usual 30: each sample fills a MiB before it is refused (14 s for 60
    samples), and what is checked is each sample's own error, whatever their number."""
    with llm_server() as (url, server):
        rubric = (
            "{% for i in range(1000) %}{% for j in range(200) %}{{ prediction }}"
            "{% endfor %}{% endfor %}"
        )
        few = predictions().groupby("variant").head(4)
        result = run_stages(tmp_path, judge_yaml(url, tmp_path / "c", rubric), {"predictions": few})
        assert server.requests["judge-m"] == 0
    judge = result.context.metrics["score"]["scorers"]["judge"]["variants"]["a"]
    assert judge["mean"] is None and "the rubric cannot be filled" in judge["undefined"]
    assert "characters" in judge["undefined"]
