"""Hostile family for the ``dagster:`` block (issue 23, item 5): the new spelling, the old
spellings (``executor``, ``automation``, ``sweep.mode``, ``sweep.pool``) and both at once.

Each case goes through `crucible validate`, the Dagster loader and `crucible run`: the old
spelling works the same and warns with file, line and the new spelling (exit 0); both at once
is one error naming both (exit 1, nothing written); the translator's spec methods are the
override points. The cases that build Dagster definitions import Dagster inside the test and
are marked ``integration`` (``make test`` runs them; ``make test-fast`` never loads Dagster).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from crucible_dagster.experiment.ir import Experiment, SweepConfig
from crucible_dagster.experiment.loading import experiment_to_data, loads_experiment
from tests.hostile.conftest import Cli, snapshot

if TYPE_CHECKING:
    import dagster as dg

HEAD = "id: spelled\npipeline:\n  - name: validate\nparameters: {a: [1, 2]}\n"  # lines 1-4
NEW = HEAD + "sweep: {metric: m}\ndagster:\n  executor: multiprocess\n  sweep: {pool: gpu_trials}\n"
OLD = HEAD + "executor: multiprocess\nsweep:\n  metric: m\n  pool: gpu_trials\n"


def _write(tmp_path: Path, text: str) -> Path:
    folder = tmp_path / "experiments"
    folder.mkdir()
    path = folder / "spelled.yaml"
    path.write_text(text)
    return path.relative_to(tmp_path)


def _job(folder: Path) -> dg.JobDefinition:
    from crucible_dagster.dagster_plugin import definitions_from_folder

    return definitions_from_folder(folder).resolve_job_def("spelled")


@pytest.mark.integration
def test_the_dagster_block_is_read_by_validate_the_loader_and_the_run(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    path = _write(tmp_path, NEW)
    validated = cli("validate", path)
    assert validated.code == 0 and validated.out == "", validated.text  # no warning at all
    job = _job(tmp_path / "experiments")
    assert job.executor_def.name == "multiprocess"
    from tests.integration.events import sweep_graph

    assert sweep_graph(job).node_named("run_trial").definition.pools == {"gpu_trials"}
    ran = cli("run", path)
    assert ran.code == 0, ran.text
    assert "warning" not in ran.err


@pytest.mark.integration
def test_an_old_spelling_works_the_same_and_warns_with_its_line_and_the_new_spelling(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.chdir(tmp_path)
    path = _write(tmp_path, OLD)
    before = snapshot(tmp_path)
    validated = cli("validate", path)
    assert validated.code == 0, validated.text
    assert validated.out.splitlines() == [
        f"{path}:5: executor: warning: old spelling of 'dagster.executor' (still read): "
        "move it there",
        f"{path}:8: sweep.pool: warning: old spelling of 'dagster.sweep.pool' (still read): "
        "move it there",
    ]
    assert snapshot(tmp_path) == before  # validate rewrites nothing
    with caplog.at_level(logging.WARNING):
        job = _job(tmp_path / "experiments")
    assert job.executor_def.name == "multiprocess"
    from tests.integration.events import sweep_graph

    assert sweep_graph(job).node_named("run_trial").definition.pools == {"gpu_trials"}
    assert "executor: warning: old spelling of 'dagster.executor'" in caplog.text
    ran = cli("run", path)
    assert ran.code == 0, ran.text
    assert validated.out.splitlines()[0] in ran.err.splitlines()


@pytest.mark.integration
def test_both_spellings_at_once_is_one_error_naming_both(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import dagster as dg

    from crucible_dagster.dagster_plugin import definitions_from_folder
    from crucible_dagster.dagster_plugin.definitions import INVALID_GROUP

    monkeypatch.chdir(tmp_path)
    path = _write(
        tmp_path, HEAD + "sweep: {metric: m, mode: run}\ndagster:\n  sweep: {mode: run}\n"
    )
    before = snapshot(tmp_path)
    validated = cli("validate", path)
    assert validated.code == 1
    line = (
        f"{path}:5: sweep.mode: 'sweep.mode' and 'dagster.sweep.mode' are the same setting: "
        "keep 'dagster.sweep.mode' only"
    )
    assert validated.out.splitlines() == [line]  # one line, and no warning beside the error
    defs = definitions_from_folder(tmp_path / "experiments")
    assert not any(job.name == "spelled" for job in defs.jobs)
    invalid = [a for a in defs.assets if isinstance(a, dg.AssetSpec)]
    assert [a.group_name for a in invalid] == [INVALID_GROUP]
    assert line in (invalid[0].description or "")
    ran = cli("run", path)
    assert ran.code == 1 and line in ran.err.splitlines()
    assert snapshot(tmp_path) == before  # no run directory


def test_dagster_sweep_settings_without_a_sweep_are_refused(cli: Cli, tmp_path: Path) -> None:
    path = _write(tmp_path, HEAD + "dagster:\n  sweep: {mode: partitions}\n")
    validated = cli("validate", tmp_path / path)
    assert validated.code == 1
    assert validated.out.startswith(f"{tmp_path / path}:6: dagster.sweep: "), validated.out
    assert "add 'sweep'" in validated.out


def test_the_old_attribute_names_read_the_dagster_block() -> None:
    """The run driver's code reads experiment.executor and sweep.mode/pool: they still answer,
    and a copy made with the old names changes the block, never the original."""
    old = loads_experiment(OLD)
    new = loads_experiment(NEW)
    assert old == new and experiment_to_data(old) == experiment_to_data(new)
    assert (old.executor, old.sweep.pool, old.sweep.mode) == ("multiprocess", "gpu_trials", "run")
    assert old.sweep is not None
    copy = old.model_copy(
        update={"executor": "celery", "sweep": old.sweep.model_copy(update={"mode": "partitions"})}
    )
    assert (copy.dagster.executor, copy.dagster.sweep.mode, copy.sweep.mode) == (
        "celery",
        "partitions",
        "partitions",
    )
    assert copy.dagster.sweep.pool == "gpu_trials"
    assert (old.executor, old.sweep.mode) == ("multiprocess", "run")  # the original unchanged
    assert isinstance(copy.sweep, SweepConfig)


def test_a_sweep_shared_by_two_experiments_reads_each_ones_settings() -> None:
    sweep = SweepConfig(metric="m")
    base = {"id": "a", "pipeline": [{"name": "validate"}], "sweep": sweep}
    one = Experiment.model_validate({**base, "dagster": {"sweep": {"pool": "one"}}})
    two = Experiment.model_validate({**base, "id": "b", "dagster": {"sweep": {"pool": "two"}}})
    assert one.sweep is not None and two.sweep is not None
    assert (one.sweep.pool, two.sweep.pool) == ("one", "two")


# --- the translator: one override method per kind of spec ---------------------------------

TRANSLATED = (
    "id: named\npipeline:\n  - name: validate\nschedule: {cron: '0 3 * * *'}\n"
    "outputs: [{name: summary}]\nquality_targets: [{name: enough, metric: m, value: 0.5}]\n"
)


@pytest.mark.integration
def test_overriding_a_spec_method_renames_every_place_that_uses_it(tmp_path: Path) -> None:
    """The job's name reaches its schedule; the report key reaches the check on it; the old
    aliases (called by the sweep and op builders) read the overridden spec."""
    import dataclasses

    import dagster as dg

    from crucible_dagster.dagster_plugin import definitions_from_folder
    from crucible_dagster.dagster_plugin.translator import CrucibleTranslator, JobSpec

    class Lab(CrucibleTranslator):
        def get_job_spec(self, experiment: Experiment) -> JobSpec:
            return dataclasses.replace(super().get_job_spec(experiment), name="lab_job")

        def get_asset_spec(self, experiment: Experiment, output: object) -> dg.AssetSpec:
            spec = super().get_asset_spec(experiment, output)  # type: ignore[arg-type]
            return spec.replace_attributes(key=dg.AssetKey(["lab", output.name]))  # type: ignore[attr-defined]

    (tmp_path / "named.yaml").write_text(TRANSLATED)
    lab = Lab()
    defs = definitions_from_folder(tmp_path, translator=lab)
    assert defs.resolve_schedule_def("named_schedule").job_name == "lab_job"
    checks = [spec for a in defs.assets or [] for spec in getattr(a, "check_specs", [])]
    assert [(c.asset_key, c.name) for c in checks] == [(dg.AssetKey(["lab", "summary"]), "enough")]
    experiment = loads_experiment(TRANSLATED)
    assert lab.job_name(experiment) == "lab_job"  # the deprecated alias reads the spec
    assert lab.report_asset_key(experiment, experiment.outputs[0]) == dg.AssetKey(
        ["lab", "summary"]
    )


@pytest.mark.integration
def test_a_deprecated_override_is_honoured_warned_and_may_call_super() -> None:
    from crucible_dagster.dagster_plugin.translator import CrucibleTranslator

    with pytest.warns(DeprecationWarning, match=r"Old\.job_name .* override get_job_spec"):

        class Old(CrucibleTranslator):
            def job_name(self, experiment: Experiment) -> str:
                return "old_" + super().job_name(experiment)  # the default, not a loop

    experiment = loads_experiment(TRANSLATED)
    assert Old().get_job_spec(experiment).name == "old_named"
    assert Old().job_name(experiment) == "old_named"


@pytest.mark.parametrize(
    ("tail", "line"),
    [
        ("automation: on_cron\n", "5: automation: automation 'on_cron' takes its cron"),
        ("sweep: {metric: m, pool: 'a b'}\n", "5: sweep.pool: expected a string matching"),
        ("executor: true\n", "5: executor: "),
    ],
    ids=["automation_without_schedule", "bad_pool", "bool_executor"],
)
def test_a_wrong_value_in_an_old_spelling_is_reported_where_the_file_wrote_it(
    cli: Cli, tmp_path: Path, tail: str, line: str
) -> None:
    path = tmp_path / "old.yaml"
    path.write_text(HEAD + tail)
    validated = cli("validate", path)
    assert validated.code == 1
    assert validated.out.splitlines() == [validated.out.splitlines()[0]], validated.out
    assert validated.out.startswith(f"{path}:{line}"), validated.out


@pytest.mark.integration
def test_an_inline_component_experiment_reads_both_spellings_and_warns_for_the_old(
    caplog: pytest.LogCaptureFixture,
) -> None:
    import dagster as dg

    from crucible_dagster.dagster_plugin import CrucibleExperimentsComponent

    old = {"id": "inline_old", "pipeline": [{"name": "validate"}], "executor": "multiprocess"}
    new = {
        "id": "inline_new",
        "pipeline": [{"name": "validate"}],
        "dagster": {"executor": "multiprocess"},
    }
    with caplog.at_level(logging.WARNING):
        defs = dg.build_defs_for_component(CrucibleExperimentsComponent(experiments=[old, new]))
    for name in ("inline_old", "inline_new"):
        assert defs.resolve_job_def(name).executor_def.name == "multiprocess"
    warned = [r.getMessage() for r in caplog.records if "old spelling" in r.getMessage()]
    assert len(warned) == 1 and "#experiments[0]" in warned[0], warned
    assert "executor: warning: old spelling of 'dagster.executor'" in warned[0]


def test_the_json_schema_has_the_block_and_marks_the_old_spellings_deprecated() -> None:
    """Editors strike an old spelling (still read) instead of flagging the file as wrong."""
    from crucible_dagster.experiment.loading import experiment_json_schema

    schema = experiment_json_schema()
    assert "dagster" in schema["properties"]
    sweep = schema["$defs"]["SweepConfig"]["properties"]
    for old in (schema["properties"]["executor"], sweep["mode"], sweep["pool"]):
        assert old["deprecated"] is True and "Old spelling of dagster." in old["description"]
    settings = schema["$defs"]["DagsterSettings"]["properties"]
    assert {"executor", "automation", "sweep"} <= set(settings)
