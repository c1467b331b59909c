"""Issue 22, section 6: with ``pii_redaction`` on, no value the guardrails found stays in any store.

PII is planted in the examples, the outputs, the per-sample table (its predictions and another
text column) and another assign; the run goes through ``crucible run``, a Dagster job in
process on a real SQLite instance under a temporary ``DAGSTER_HOME``, and ``dagster job
execute`` with the multiprocess executor. Then every file under the run directory and
``DAGSTER_HOME`` is searched for the planted values: raw bytes (the SQLite event log is
binary), and Parquet files decoded with pyarrow (their pages may be compressed).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow.parquet as pq
import pytest

from crucible_dagster import Experiment
from crucible_dagster.evaluation.per_sample import save_table
from crucible_dagster.runtime.context import Context
from crucible_dagster.runtime.stage import Stage
from tests.conftest import ROOT, subprocess_env
from tests.hostile.conftest import Cli

if TYPE_CHECKING:
    import dagster as dg

EMAIL = "zelda.planted@example.org"
PHONE = "+1 415 555 0199"
CARD = "4111 1111 1111 1111"
API_KEY = "sk-proj-PlantedKeyABCDEFGHIJKLMNOP"
PLANTED = (EMAIL, PHONE, CARD, API_KEY)


class PlantPii(Stage):
    """Examples, outputs, a per-sample table, other assigns and a metric (which the trace
    records at the stage's end), all holding planted PII."""

    name = "plant_pii"

    def run(self, ctx: Context, options: Any) -> Context:
        import pandas as pd

        examples: list[dict[str, Any]] = [
            {"input": f"Mail me at {EMAIL} please", "output": "ok"},
            {"input": f"My card is {CARD}", "meta": {"note": f"key {API_KEY}"}},
            {"input": "What is the capital of France?", "output": "Paris"},
        ]
        table = pd.DataFrame(
            {
                "variant": ["m", "m", "m"],
                "sample_id": ["0", "1", "2"],
                "input": [e["input"] for e in examples],
                "prediction": [f"Call {PHONE}", "42", "Paris"],
            }
        )
        rows = pd.DataFrame({"text": [examples[0]["input"], "plain"], "n": [1, 2]})
        ctx = ctx.assign({"examples": examples, "raw_rows": rows, "notes": [f"from {EMAIL}"]})
        ctx = ctx.put_metric("first_contact", EMAIL)  # into the trace's stage_completed summary
        return save_table(ctx, table).add_output(f"call {PHONE}")


def _experiment(profile: str, **extra: Any) -> dict[str, Any]:
    return {
        "id": "pii",
        "reliability": {"guardrails": {"profiles": [profile]}},
        "pipeline": [
            {"name": "plant", "module": "tests.hostile.test_pii_stores:PlantPii"},
            {"name": "guardrails"},
            {"name": "report"},
        ],
        "outputs": [{"name": "r", "formats": ["html", "json", "csv", "markdown"]}],
        **extra,
    }


def _parquet_strings(path: Path) -> list[str]:
    table = pq.read_table(path)
    return [str(v) for column in table.to_pydict().values() for v in column]


def leaks(*roots: Path, values: Sequence[str] = PLANTED) -> list[str]:
    """Every (file, planted value) pair found under ``roots``, by bytes and decoded Parquet."""
    found = []
    for root in roots:
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            data = path.read_bytes()
            texts = [data.decode("utf-8", "replace")]
            if path.suffix == ".parquet":
                texts += _parquet_strings(path)
            found += [f"{path}: {v}" for v in values if any(v in t for t in texts)]
    return found


def _searched_files(root: Path) -> set[str]:
    return {p.suffix for p in root.rglob("*") if p.is_file()}


@pytest.mark.parametrize(("profile", "code"), [("moderate", 0), ("strict", 1)])
def test_crucible_run_leaves_no_planted_value_in_the_run_directory(
    cli: Cli, tmp_path: Path, artifacts_dir: Path, profile: str, code: int
) -> None:
    path = tmp_path / "pii.yaml"
    path.write_text(json.dumps(_experiment(profile)))
    said = cli("run", path, "--run-id", "r1")
    assert said.code == code, said.text
    run_dir = artifacts_dir / "pii" / "r1"
    assert ".parquet" in _searched_files(run_dir)
    assert leaks(run_dir) == []
    assert not any(v in said.text for v in PLANTED), said.text
    manifest = json.loads((run_dir / "manifest.json").read_text())
    if profile == "strict":  # the guardrails stop the run on what they found
        assert manifest["status"] == "failed"
        assert manifest["failure"]["reason"] == "guardrail_detection"
        return
    assert {".json", ".html", ".csv", ".md"} <= _searched_files(run_dir)
    assert manifest["status"] == "completed"
    assert manifest["metrics"]["guardrails"]["redacted"] >= 4


def _execute(home: Path, artifacts: Path, profile: str) -> dg.ExecuteInProcessResult:
    import dagster as dg

    from crucible_dagster.dagster_plugin import CrucibleResource, build_job

    experiment = Experiment.model_validate(_experiment(profile))
    job = build_job(experiment, resource=CrucibleResource(artifacts_dir=str(artifacts)))
    home.mkdir(exist_ok=True)
    with dg.DagsterInstance.local_temp(str(home)) as instance:
        return job.execute_in_process(instance=instance, raise_on_error=False)


@pytest.mark.integration  # executes a Dagster job in-process
@pytest.mark.slow
def test_a_dagster_run_leaves_no_planted_value_in_dagster_home_or_the_run_directory(
    tmp_path: Path,
) -> None:
    home, artifacts = tmp_path / "home", tmp_path / "artifacts"
    result = _execute(home, artifacts, "moderate")
    assert result.success
    # each stage's output under its step, <experiment>__stages.<stage> in the report's graph
    storage = home / "storage" / "crucible" / result.run_id
    assert (storage / "pii__stages.guardrails" / "result.json").is_file()  # re-execution works
    assert (storage / "pii__stages.plant" / "result.redacted").is_file()  # the raw one is gone
    assert ".db" in _searched_files(home) and ".parquet" in _searched_files(storage)
    assert leaks(home, artifacts) == []


@pytest.mark.integration  # executes a Dagster job in-process
@pytest.mark.slow
def test_guardrails_stopping_the_run_leave_no_planted_value(tmp_path: Path) -> None:
    home, artifacts = tmp_path / "home", tmp_path / "artifacts"
    result = _execute(home, artifacts, "strict")
    assert not result.success
    (run_dir,) = (artifacts / "pii").iterdir()
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "failed"
    assert manifest["failure"]["reason"] == "guardrail_detection", manifest["failure"]
    assert leaks(home, artifacts) == []


@pytest.mark.integration  # executes a Dagster job in-process
@pytest.mark.slow
def test_loading_a_deleted_output_says_why(tmp_path: Path) -> None:
    import dagster as dg

    from crucible_dagster.dagster_plugin.io_manager import CrucibleContextIOManager

    home, artifacts = tmp_path / "home", tmp_path / "artifacts"
    result = _execute(home, artifacts, "moderate")
    manager = CrucibleContextIOManager(base_dir=str(home / "storage" / "crucible"))
    step = "pii__stages.plant"  # the stage's step in the report asset's graph
    upstream = dg.build_output_context(step_key=step, name="result", run_id=result.run_id)
    with pytest.raises(dg.Failure) as failure:
        manager.load_input(dg.build_input_context(upstream_output=upstream))
    assert f"'{step}'" in str(failure.value.description)
    assert "redacted as PII" in str(failure.value.description)


@pytest.mark.integration
@pytest.mark.slow
def test_dagster_job_execute_in_subprocesses_leaves_no_planted_value(tmp_path: Path) -> None:
    folder, home, artifacts = tmp_path / "experiments", tmp_path / "home", tmp_path / "artifacts"
    folder.mkdir()
    home.mkdir()
    shutil.copy(ROOT / "dagster.yaml", home / "dagster.yaml")
    experiment = _experiment("moderate", executor="multiprocess")
    (folder / "pii.yaml").write_text(json.dumps(experiment))
    done = subprocess.run(
        [sys.executable, "-m", "dagster", "job", "execute", "-f", "definitions.py", "-j", "pii"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env=subprocess_env(
            DAGSTER_HOME=str(home),
            CRUCIBLE_ARTIFACTS_DIR=str(artifacts),
            CRUCIBLE_EXPERIMENTS_DIR=str(folder),
        ),
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert ".db" in _searched_files(home) and ".parquet" in _searched_files(home)
    assert leaks(home, artifacts) == []


@pytest.mark.integration  # the IO manager's module imports Dagster
def test_a_truncated_stored_output_is_deleted_not_a_crash(tmp_path: Path) -> None:
    """A stored output that no longer parses cannot vouch that it holds no PII: it goes, with
    its note, and the purge goes on (before: a JSONDecodeError failed the guardrails' step)."""
    from crucible_dagster.dagster_plugin.io_manager import forget_unredacted

    root = tmp_path / "run"
    (root / "plant").mkdir(parents=True)
    (root / "guardrails").mkdir()
    (root / "blobs").mkdir()
    (root / "plant" / "result.json").write_text('{"schema_version": 1, "assigns": {"x": "' + EMAIL)
    kept = {"__crucible__": "table", "blob": "kept.npy"}
    redacted = {"metrics": {"guardrails": {"redacted": 1}}, "assigns": {"t": kept}}
    (root / "guardrails" / "result.json").write_text(json.dumps(redacted))
    (root / "blobs" / "kept.npy").write_bytes(b"kept")
    (root / "blobs" / "raw.npy").write_bytes(EMAIL.encode())
    deleted = forget_unredacted(root)
    assert deleted == [str(root / "plant" / "result.json")]
    assert (root / "plant" / "result.redacted").is_file()
    assert sorted(p.name for p in (root / "blobs").iterdir()) == ["kept.npy"]
    assert leaks(root) == []


# --- PII written in the experiment file, and in sample ids (attack b: B3, B3b) -------------

ID_EMAIL = "dave.q@corp.io"
ID_CARD = "5555 5555 5555 4444"
INLINE = (ID_EMAIL, ID_CARD, EMAIL, CARD, API_KEY)


def echo(values: list[Any]) -> list[str]:
    """The callable backend of these cases: repeats the input (its PII with it), so the
    guardrails' detections in the predictions name their samples."""
    return [f"you said: {v}" for v in values]


def _inline_experiment(profile: str) -> dict[str, Any]:
    """The README's pattern: seed_examples with inline examples, then the guardrails; the
    sample ids are themselves PII (an email, a card number)."""
    examples = [
        {"id": ID_EMAIL, "input": f"write to {EMAIL}", "output": "ok"},
        {"id": ID_CARD, "input": f"card {CARD} and key {API_KEY}", "output": "ok"},
        {"id": "plain", "input": "hello", "output": "ok"},
    ]
    return {
        "id": "pii_inline",
        "reliability": {"guardrails": {"profiles": [profile]}},
        "pipeline": [
            {
                "name": "seed_examples",
                "module": "crucible_dagster.contrib.examples:SeedExamples",
                "options": {"examples": examples},
            },
            {"name": "predict", "options": {"inputs": "examples", "reference": "output"}},
            {"name": "guardrails"},
            {"name": "report"},
        ],
        "backend": {
            "id": "callable",
            "options": {"function": "tests.hostile.test_pii_stores:echo"},
        },
        "outputs": [{"name": "r", "formats": ["json", "markdown"]}],
    }


def inline_leaks(*roots: Path) -> list[str]:
    return leaks(*roots, values=INLINE)


def test_strict_guardrails_name_no_sample_by_an_id_that_is_pii(
    cli: Cli, tmp_path: Path, artifacts_dir: Path
) -> None:
    """Before: manifest.json's failure.details named samples 'echo/dave.q@corp.io', while the
    same ids were redacted in predictions.parquet; the experiment's copy kept the examples."""
    path = tmp_path / "pii.yaml"
    path.write_text(json.dumps(_inline_experiment("strict")))
    said = cli("run", path, "--run-id", "r1")
    assert said.code == 1, said.text
    assert "Traceback" not in said.text
    run_dir = artifacts_dir / "pii_inline" / "r1"
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "failed"
    assert manifest["failure"]["reason"] == "guardrail_detection"
    samples = {d.get("sample") for d in manifest["failure"]["details"]} - {None}
    assert any("[REDACTED:email]" in s for s in samples), samples
    assert any("[REDACTED:credit_card]" in s for s in samples), samples
    assert inline_leaks(run_dir) == []
    assert not any(v in said.text for v in INLINE), said.text


def test_inline_pii_in_the_experiment_is_redacted_in_the_manifests_copy(
    cli: Cli, tmp_path: Path, artifacts_dir: Path
) -> None:
    """Before: experiment.pipeline[0].options.examples and stages.seed_examples.options kept
    every value the guardrails found and redacted everywhere else."""
    path = tmp_path / "pii.yaml"
    path.write_text(json.dumps(_inline_experiment("moderate")))
    said = cli("run", path, "--run-id", "r1")
    assert said.code == 0, said.text
    run_dir = artifacts_dir / "pii_inline" / "r1"
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "completed"
    examples = manifest["experiment"]["pipeline"][0]["options"]["examples"]
    assert examples[0] == {"id": "[REDACTED:email]", "input": "write to [REDACTED:email]",
                           "output": "ok"}  # fmt: skip
    assert examples[2] == {"id": "plain", "input": "hello", "output": "ok"}  # the rest kept
    assert manifest["stages"]["seed_examples"]["options"]["examples"][2]["input"] == "hello"
    assert inline_leaks(run_dir) == []


@pytest.mark.integration  # executes a Dagster job in-process
@pytest.mark.slow
@pytest.mark.parametrize("profile", ["moderate", "strict"])
def test_a_dagster_run_stores_no_inline_pii_in_its_outputs(tmp_path: Path, profile: str) -> None:
    """Dagster's stored outputs of the guardrails and later steps hold the redacted experiment.
    Its run config and job snapshot (history/) keep the file's text: the experiment file is
    configuration, not data (README), so only storage/ and the run directory are searched."""
    import dagster as dg

    from crucible_dagster.dagster_plugin import CrucibleResource, build_job

    home, artifacts = tmp_path / "home", tmp_path / "artifacts"
    experiment = Experiment.model_validate(_inline_experiment(profile))
    job = build_job(experiment, resource=CrucibleResource(artifacts_dir=str(artifacts)))
    home.mkdir()
    with dg.DagsterInstance.local_temp(str(home)) as instance:
        result = job.execute_in_process(instance=instance, raise_on_error=False)
    assert result.success == (profile == "moderate")
    stored = home / "storage" / "crucible" / result.run_id
    # the last step stored (the report's Context is not: no asset reads it)
    last = "guardrails" if profile == "moderate" else "seed_examples"
    assert (stored / f"pii_inline__stages.{last}").is_dir()
    assert inline_leaks(home / "storage", artifacts) == []
