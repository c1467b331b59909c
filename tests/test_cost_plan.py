"""The dry run (``crucible run --dry-run``, ``crucible plan --cost``): per variant and in total,
the requests, tokens and cost a run would take, sending nothing; checked against what the run
then spends on the bundled test server. The server counts whitespace words, so the check is
made with the ``words`` tokenizer (exact there) and answers of a known length (sums: one word);
with a real model's tokenizer the estimate is only as good as the tokenizer option."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from crucible_dagster import Experiment
from crucible_dagster.contrib.llm_server import llm_server
from tests.conftest import Cli
from tests.test_budget import SEED, examples


def priced(url: str, model: str, price_in: float, price_out: float, **extra: Any) -> dict[str, Any]:
    return {
        "id": "openai_compatible",
        "endpoint_url": url,
        "options": {
            "model": model,
            "system": "You answer sums with one number.",
            "price_per_million_input": price_in,
            "price_per_million_output": price_out,
            "tokenizer": "words",
            "expected_completion_tokens": 1,
            **extra,
        },
    }


def two_models(url: str, cache_dir: Path, **extra: Any) -> dict[str, Any]:
    cache = {"cache_dir": str(cache_dir)}
    return {
        "id": "cost_plan",
        "pipeline": [
            {"name": "seed", "module": SEED, "options": {"examples": examples(12)}},
            {
                "name": "predict",
                "options": {
                    "inputs": "examples",
                    "reference": "output",
                    "variants": {
                        "small": priced(url, "small", 150.0, 600.0, **cache),
                        "large": priced(url, "large", 2500.0, 10000.0, **cache),
                    },
                },
            },
        ],
        **extra,
    }


def write(path: Path, data: dict[str, Any]) -> Path:
    Experiment.model_validate(data)  # a valid experiment, as the command will read it
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")) if root.exists() else []


def test_the_dry_run_is_within_one_percent_of_what_the_run_spends(
    cli: Cli, tmp_path: Path, artifacts_dir: Path
) -> None:
    with llm_server() as (url, server):
        path = write(tmp_path / "plan.yaml", two_models(url, tmp_path / "cache"))
        dry = cli("run", path, "--dry-run", "--json")
        assert dry.code == 0 and sum(server.requests.values()) == 0  # nothing was called
        assert files(artifacts_dir) == [] and files(tmp_path / "cache") == []
        plan = json.loads(dry.out)
        ran = cli("run", path, "--json")
        assert ran.code == 0
    spent = json.loads(ran.out)["predictions"]
    for row in plan["variants"]:
        assert row["requests"] == 12 == server.requests[row["variant"]]
        assert row["cost"] == pytest.approx(spent[row["variant"]]["cost"], rel=0.01)
        assert row["prompt_tokens"] == 12 * (6 + 1)  # the system message's 6 words and the sum
    total = sum(v["cost"] for v in spent.values())
    assert plan["total"]["cost"] == pytest.approx(total, rel=0.01)
    assert plan["total"]["requests"] == 24


@pytest.mark.slow
def test_a_sweep_is_planned_per_trial_and_the_cache_answers_repeats(
    cli: Cli, tmp_path: Path
) -> None:
    """Two seeds of the same configuration send the same requests: the second trial's are
    answered by the cache the first filled, and both the plan and the run say so."""
    with llm_server() as (url, server):
        data = two_models(url, tmp_path / "cache", seeds=[1, 2])
        path = write(tmp_path / "sweep.yaml", data)
        plan = json.loads(cli("plan", path, "--cost", "--json").out)
        assert sum(server.requests.values()) == 0
        cli("run", path)
        sent = sum(server.requests.values())
    by_trial = {(r["trial"], r["variant"]): (r["requests"], r["cached"]) for r in plan["variants"]}
    assert by_trial == {
        ("seed_1", "small"): (12, 0),
        ("seed_1", "large"): (12, 0),
        ("seed_2", "small"): (0, 12),
        ("seed_2", "large"): (0, 12),
    }
    assert plan["total"]["requests"] == sent == 24


def test_the_table_names_each_variant_the_total_and_the_budget(cli: Cli, tmp_path: Path) -> None:
    data = two_models("http://127.0.0.1:9/v1", tmp_path / "cache", budget={"max_cost": 0.01})
    path = write(tmp_path / "budget.yaml", data)
    said = cli("plan", path, "--cost")
    assert said.code == 0
    lines = said.out.splitlines()
    assert lines[0] == "cost plan of cost_plan (estimated; nothing was sent)"
    assert lines[1].split() == [
        "trial", "stage", "variant", "backend", "requests", "cached", "prompt", "tokens",
        "completion", "tokens", "cost",
    ]  # fmt: skip
    assert lines[2].split()[:5] == ["-", "predict", "small", "openai_compatible", "12"]
    assert lines[4].split()[:2] == ["total", "24"]
    # small: 84 in x 150 + 12 out x 600; large: 84 x 2500 + 12 x 10000 (per million)
    expected = (84 * 150 + 12 * 600 + 84 * 2500 + 12 * 10000) / 1e6
    assert float(lines[4].split()[-1]) == pytest.approx(expected)
    assert "note: tokens by words; completion from expected_completion_tokens" in said.out
    assert said.out.rstrip().endswith(
        f"budget: does not fit (max_cost 0.01 < {expected:.6g} estimated): the run would end "
        "budget_exhausted"
    )
    assert cli("run", path, "--dry-run").out == said.out


def test_a_plan_that_cannot_be_made_is_one_line(cli: Cli, tmp_path: Path) -> None:
    data = two_models("http://127.0.0.1:9/v1", tmp_path / "cache")
    data["pipeline"][1]["options"]["inputs"] = "nothing_here"
    path = write(tmp_path / "bad.yaml", data)
    said = cli("run", path, "--dry-run")
    assert said.code == 1
    (line,) = said.err.strip().splitlines()
    assert line.startswith(f"{path}: cannot be planned: stage 'predict': ")
    assert "assigns['nothing_here']" in line


def test_a_backend_without_prices_or_network_is_planned_as_such(cli: Cli, tmp_path: Path) -> None:
    data = two_models("http://127.0.0.1:9/v1", tmp_path / "cache")
    variants = data["pipeline"][1]["options"]["variants"]
    variants["small"]["options"].pop("price_per_million_input")
    variants["small"]["options"].pop("price_per_million_output")
    variants["large"] = {"id": "noop"}
    plan = json.loads(cli("plan", write(tmp_path / "p.yaml", data), "--cost", "--json").out)
    small, large = plan["variants"]
    assert small["cost"] is None and "no prices set" in small["note"]
    assert large["requests"] == 12 and large["cost"] is None
    assert "no requests over the network" in large["note"]
    assert plan["total"]["cost"] is None


def test_the_samples_of_a_dataset_are_planned_as_the_run_loads_them(
    cli: Cli, tmp_path: Path
) -> None:
    rows = [{"input": f"{i}+2", "output": str(i + 2)} for i in range(7)]
    data_file = tmp_path / "sums.jsonl"
    data_file.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with llm_server() as (url, server):
        data = two_models(url, tmp_path / "cache")
        data["dataset"] = {
            "name": "sums",
            "provider": "local",
            "format": "jsonl",
            "options": {"path": str(data_file)},
        }
        data["pipeline"] = data["pipeline"][1:]  # the dataset is what predict asks
        # predict sends each example's input field ("0+2"), and the server answers the sum:
        # one word an answer, as two_models expects
        path = write(tmp_path / "dataset.yaml", data)
        plan = json.loads(cli("run", path, "--dry-run", "--json").out)
        assert sum(server.requests.values()) == 0
        spent = json.loads(cli("run", path, "--json").out)["predictions"]
    assert plan["total"]["requests"] == 14 == sum(server.requests.values())
    total = sum(v["cost"] for v in spent.values())
    assert plan["total"]["cost"] == pytest.approx(total, rel=0.01)
