"""A broken experiment file never stops the others; its errors are visible in the UI and the log."""

from __future__ import annotations

import gc
import logging
import shutil
import weakref
from pathlib import Path

import dagster as dg
import pytest

from crucible_dagster.dagster_plugin import CrucibleExperimentsComponent, definitions_from_folder
from crucible_dagster.experiment.problems import ExperimentError
from crucible_dagster.runtime.preflight import check_file
from tests.conftest import ROOT
from tests.dagster_helpers import ephemeral_instance
from tests.integration.specs import asset_specs, stage_graph

MALFORMED = sorted((ROOT / "tests" / "malformed").iterdir())


@pytest.fixture
def mixed_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "experiments"
    shutil.copytree(ROOT / "experiments", folder)
    for path in MALFORMED:
        shutil.copy(path, folder / path.name)
    return folder


def test_good_jobs_load_beside_every_malformed_file(
    mixed_folder: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="crucible_dagster"):
        defs = definitions_from_folder(mixed_folder)
    for job in ("core_pipeline_demo", "trace_demo", "classifier_comparison"):
        assert defs.resolve_job_def(job).name == job
    invalid = [
        a
        for a in defs.assets
        if isinstance(a, dg.AssetSpec) and a.group_name == "crucible_invalid_experiments"
    ]
    assert len(invalid) == len(MALFORMED)
    for path in MALFORMED:
        spec = next(a for a in invalid if a.metadata["file"].endswith(path.name))
        # the same messages as `crucible validate`, in the asset's description and in the log
        for problem in check_file(mixed_folder / path.name).problems:
            assert str(problem) in (spec.description or "")
            assert str(problem) in caplog.text
    dg.Definitions.validate_loadable(defs)
    # and they stand out: a running sensor whose every tick fails listing each file's problems
    sensor = defs.get_repository_def().get_sensor_def("crucible_invalid_experiments")
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    with pytest.raises(Exception, match=f"{len(MALFORMED)} experiment files could not be loaded"):
        sensor.evaluate_tick(dg.build_sensor_context())
    try:
        sensor.evaluate_tick(dg.build_sensor_context())
    except Exception as failure:
        for path in MALFORMED:
            for problem in check_file(mixed_folder / path.name).problems:
                assert str(problem) in str(failure)


def test_a_folder_without_invalid_files_has_no_failing_sensor() -> None:
    defs = definitions_from_folder(ROOT / "experiments")
    assert [s.name for s in defs.get_repository_def().sensor_defs] == []


def test_loaded_definitions_are_frozen_out_of_the_collectors_reach(tmp_path: Path) -> None:
    """A code location keeps its definitions for life: the cyclic collector must not rescan
    them at every full collection (nor at exit, where it cost 1 s for 1000 files)."""
    shutil.copy(ROOT / "experiments" / "core_pipeline_demo.yaml", tmp_path)
    gc.unfreeze()
    assert gc.isenabled()
    defs = definitions_from_folder(tmp_path)
    assert gc.isenabled()
    assert gc.get_freeze_count() > 0
    job = defs.resolve_job_def("core_pipeline_demo")
    stage = stage_graph(job).node_defs[0]
    assert stage.output_defs[0].io_manager_key == "crucible_io_manager"


def test_a_reload_lets_the_earlier_definitions_be_collected(tmp_path: Path) -> None:
    shutil.copy(ROOT / "experiments" / "core_pipeline_demo.yaml", tmp_path)
    # The first load of a process fills Dagster's one-time caches, which keep what they first
    # saw; the property is that loads do not pile up, so it is measured from the second on.
    definitions_from_folder(tmp_path)
    second = weakref.ref(definitions_from_folder(tmp_path).resolve_job_def("core_pipeline_demo"))
    definitions_from_folder(tmp_path)
    assert second() is None


def test_a_repeated_id_keeps_the_first_file_and_names_it_in_the_later(tmp_path: Path) -> None:
    """Issue 30 item 3: a second file with an id drops neither; the first in path order loads
    and the later one is invalid at its id's line, naming the first file and line."""
    (tmp_path / "b.yaml").write_text(
        "# a copy\n" + (ROOT / "experiments/trace_demo.yaml").read_text()
    )
    shutil.copy(ROOT / "experiments" / "trace_demo.yaml", tmp_path / "a.yaml")
    shutil.copy(ROOT / "experiments" / "core_pipeline_demo.yaml", tmp_path / "c.yaml")
    defs = definitions_from_folder(tmp_path)
    assert defs.resolve_job_def("core_pipeline_demo")  # the others still load
    assert defs.resolve_job_def("trace_demo")  # the first copy (a.yaml) loads
    (spec,) = [
        s for s in asset_specs(defs).values() if s.group_name == "crucible_invalid_experiments"
    ]
    assert spec.metadata["file"].endswith("b.yaml")
    first_line = next(
        n
        for n, line in enumerate((tmp_path / "a.yaml").read_text().splitlines(), 1)
        if line.startswith("id:")
    )
    assert f"b.yaml:{first_line + 1}: id: experiment id 'trace_demo' is already used by " in (
        spec.description or ""
    )
    assert f"a.yaml:{first_line}, which is the one loaded" in (spec.description or "")


def test_missing_or_empty_experiments_folder_is_visible(tmp_path: Path) -> None:
    for folder in (tmp_path / "missing", tmp_path):
        defs = definitions_from_folder(folder)
        (spec,) = [a for a in defs.assets if a.group_name == "crucible_invalid_experiments"]
        assert "experiments folder" in (spec.description or "")


def test_invalid_file_keys_are_relative_and_distinct(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    for name in ("bad.yaml", "bad.yml", "sub/bad.yaml"):
        (tmp_path / name).write_text("id: [unclosed\n")
    defs = definitions_from_folder(tmp_path)
    keys = {a.key.path[-1] for a in defs.assets if a.group_name == "crucible_invalid_experiments"}
    assert keys == {"bad_yaml", "bad_yml", "sub__bad_yaml"}
    assert not any(str(tmp_path).strip("/").split("/")[0] in key for key in keys)


def test_experiments_dir_from_environment(
    mixed_folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CRUCIBLE_EXPERIMENTS_DIR", str(mixed_folder))
    assert definitions_from_folder().resolve_job_def("trace_demo")


def test_component_builds_folder_and_inline_experiments() -> None:
    component = CrucibleExperimentsComponent(
        path=str(ROOT / "experiments"),
        experiments=[{"id": "inline_demo", "pipeline": [{"name": "validate"}]}],
    )
    defs = dg.build_defs_for_component(component)
    assert defs.resolve_job_def("inline_demo")
    assert defs.resolve_job_def("trace_demo")


def test_component_from_defs_yaml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    project = tmp_path / "proj"
    defs_dir = project / "src" / "crucproj" / "defs" / "experiments"
    defs_dir.mkdir(parents=True)
    (project / "src" / "crucproj" / "__init__.py").write_text("")
    (project / "src" / "crucproj" / "defs" / "__init__.py").write_text("")
    (project / "pyproject.toml").write_text(
        '[tool.dg]\ndirectory_type = "project"\n\n[tool.dg.project]\nroot_module = "crucproj"\n'
    )
    shutil.copy(ROOT / "experiments" / "trace_demo.yaml", defs_dir / "trace_demo.yaml")
    (defs_dir / "defs.yaml").write_text(
        "type: crucible_dagster.dagster_plugin.CrucibleExperimentsComponent\nattributes:\n  path: .\n"
    )
    monkeypatch.syspath_prepend(str(project / "src"))
    defs = dg.load_from_defs_folder(path_within_project=project)
    assert defs.resolve_job_def("trace_demo")
    # the component's own defs.yaml in the folder is not taken for a broken experiment
    groups = {spec.group_name for spec in asset_specs(defs).values()}
    assert "crucible_invalid_experiments" not in groups


def _project(tmp_path: Path, defs_yaml: str, module: str) -> Path:
    project = tmp_path / "proj"
    defs_dir = project / "src" / module / "defs" / "experiments"
    defs_dir.mkdir(parents=True)
    (project / "src" / module / "__init__.py").write_text("")
    (project / "src" / module / "defs" / "__init__.py").write_text("")
    (project / "pyproject.toml").write_text(
        f'[tool.dg]\ndirectory_type = "project"\n\n[tool.dg.project]\nroot_module = "{module}"\n'
    )
    (defs_dir / "defs.yaml").write_text(defs_yaml)
    return project


def test_component_takes_a_translator_a_registry_and_post_processing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = _project(
        tmp_path,
        "type: crucible_dagster.dagster_plugin.CrucibleExperimentsComponent\n"
        "attributes:\n"
        "  translator: 'tests.dagster_helpers:PrefixTranslator'\n"
        "  registry: {count: 'tests.helpers:CountingTable'}\n"
        "  experiments:\n"
        "    - id: counted\n"
        "      pipeline: [{name: tally, module: count, options: {counter_file: c.txt}}, {name: report}]\n"
        "      outputs: [{name: summary, formats: [json]}]\n"
        "post_processing:\n"
        "  assets:\n"
        "    - target: '*'\n"
        "      attributes: {group_name: lab_reports}\n",
        "crucproj_translated",  # a module name of its own: another test imported "crucproj"
    )
    monkeypatch.syspath_prepend(str(project / "src"))
    defs = dg.load_from_defs_folder(path_within_project=project)
    assert defs.resolve_job_def("counted")  # 'count' came from the component's registry
    spec = asset_specs(defs)[dg.AssetKey(["lab", "counted", "summary"])]  # the translator's key
    assert spec.group_name == "lab_reports"  # Dagster's post-processing applied to our assets


def test_a_translator_that_is_not_one_is_refused(tmp_path: Path) -> None:
    component = CrucibleExperimentsComponent(
        translator="tests.helpers:CountingTable", experiments=[]
    )
    with pytest.raises(ExperimentError, match="expected a CrucibleTranslator subclass"):
        dg.build_defs_for_component(component)


def test_scaffolding_writes_a_defs_yaml_and_a_first_experiment_that_runs(tmp_path: Path) -> None:
    from dagster.components.component_scaffolding import scaffold_object

    target = tmp_path / "defs" / "experiments"
    typename = "crucible_dagster.dagster_plugin.CrucibleExperimentsComponent"
    scaffold_object(target, typename, '{"experiment_id": "first"}', "yaml", None)
    assert "path: experiments" in (target / "defs.yaml").read_text()
    defs = definitions_from_folder(target / "experiments")
    with ephemeral_instance() as instance:
        assert defs.resolve_job_def("first").execute_in_process(instance=instance).success
    with pytest.raises(FileExistsError):  # a second scaffold never overwrites the file
        scaffold_object(target, typename, '{"experiment_id": "first"}', "yaml", None)
