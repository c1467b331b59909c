"""The crucible component in a `dg` project (issue 30 items 1, 3 and 4): strict loading for CI,
duplicate experiment ids within and across components, and where run directories go."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import dagster as dg
import pytest

from crucible_dagster.dagster_plugin.load_report import ExperimentsNotLoaded
from crucible_dagster.experiment.problems import ExperimentError
from tests.conftest import ROOT
from tests.dagster_helpers import ephemeral_instance
from tests.integration.specs import asset_specs

TYPE = "type: crucible_dagster.dagster_plugin.CrucibleExperimentsComponent\n"
TRACE = (ROOT / "experiments" / "trace_demo.yaml").read_text()
GOOD = "id: {id}\npipeline:\n  - name: validate\n"


@pytest.fixture(autouse=True)
def _no_deployment_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """The Makefile exports CRUCIBLE_ARTIFACTS_DIR; these tests set what they need."""
    for name in ("CRUCIBLE_ARTIFACTS_DIR", "CRUCIBLE_STRICT"):
        monkeypatch.delenv(name, raising=False)


class Project:
    """A dg project on disk: pyproject.toml, src/<module>/defs/<component folders>."""

    def __init__(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
        self.root = tmp_path / "proj"
        # a module name of its own: Python caches every project's package by name
        self.module = "crucproj_" + hashlib.sha256(str(tmp_path).encode()).hexdigest()[:10]
        self.defs = self.root / "src" / self.module / "defs"
        self.defs.mkdir(parents=True)
        (self.defs.parent / "__init__.py").write_text("")
        (self.defs / "__init__.py").write_text("")
        (self.root / "pyproject.toml").write_text(
            '[tool.dg]\ndirectory_type = "project"\n\n'
            f'[tool.dg.project]\nroot_module = "{self.module}"\n'
        )
        monkeypatch.syspath_prepend(str(self.root / "src"))

    def component(self, name: str, attributes: str, files: dict[str, str] | None = None) -> Path:
        folder = self.defs / name
        (folder / "experiments").mkdir(parents=True)
        (folder / "defs.yaml").write_text(TYPE + "attributes:\n" + attributes)
        for file_name, text in (files or {}).items():
            (folder / "experiments" / file_name).write_text(text)
        return folder

    def load(self) -> dg.Definitions:
        return dg.load_from_defs_folder(path_within_project=self.root)


def _cause(exc: BaseException) -> BaseException:
    """The error Dagster's component tree wraps (it names the component, then ours)."""
    while exc.__cause__ is not None:
        exc = exc.__cause__
    return exc


def _invalid(defs: dg.Definitions) -> dict[str, str]:
    return {
        str(spec.metadata["file"]): spec.description or ""
        for spec in asset_specs(defs).values()
        if spec.group_name == "crucible_invalid_experiments"
    }


# --- item 1: strict mode ------------------------------------------------------------------


def test_lenient_loads_the_good_and_strict_fails_listing_every_problem_located(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = Project(tmp_path, monkeypatch)
    files = {
        "good.yaml": GOOD.format(id="good"),
        "bad_yaml.yaml": "id: [unclosed\n",
        "bad_field.yaml": GOOD.format(id="bad_field") + "seed: high\n",
    }
    project.component("exps", "  path: experiments\n", files)
    defs = project.load()  # lenient (the default): one bad file never hides the others
    assert defs.resolve_job_def("good")
    assert sorted(Path(f).name for f in _invalid(defs)) == ["bad_field.yaml", "bad_yaml.yaml"]

    monkeypatch.setenv("CRUCIBLE_STRICT", "1")
    with pytest.raises(Exception) as raised:
        project.load()
    error = _cause(raised.value)
    assert isinstance(error, ExperimentsNotLoaded)
    lines = str(error).splitlines()
    assert "2 problems" in lines[0] and "CRUCIBLE_STRICT=1" in lines[0]
    assert any(
        line.strip().startswith(f"{project.defs}") or "bad_yaml.yaml:2:" in line for line in lines
    )
    assert [line for line in lines if "bad_yaml.yaml:2: (root): invalid YAML" in line]
    assert [line for line in lines if "bad_field.yaml:4: seed: expected an integer" in line]


def test_the_strict_attribute_alone_fails_the_load(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = Project(tmp_path, monkeypatch)
    project.component("exps", "  path: experiments\n  strict: true\n", {"b.yaml": "id: [\n"})
    with pytest.raises(Exception) as raised:
        project.load()
    assert isinstance(_cause(raised.value), ExperimentsNotLoaded)
    assert "b.yaml:2: (root): invalid YAML" in str(_cause(raised.value))


@pytest.mark.parametrize("value", ['"yes"', "1", "maybe", "null", "[true]"])
def test_a_strict_attribute_that_is_not_a_bool_is_refused_at_its_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    """pydantic would read "yes" and 1 as true: a CI switch takes true or false only."""
    project = Project(tmp_path, monkeypatch)
    folder = project.component("exps", f"  path: experiments\n  strict: {value}\n", {})
    (folder / "experiments" / "good.yaml").write_text(GOOD.format(id="good"))
    with pytest.raises(Exception) as raised:
        project.load()
    text = str(_cause(raised.value))
    assert "strict" in text
    assert f"{folder / 'defs.yaml'}:4" in text
    assert "expected true or false" in text or "valid boolean" in text


@pytest.mark.parametrize(
    ("raw", "strict"),
    [("1", True), ("TRUE", True), ("on", True), ("0", False), ("", False), ("off", False)],
)
def test_crucible_strict_values(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, raw: str, strict: bool
) -> None:
    from crucible_dagster.dagster_plugin import definitions_from_folder

    (tmp_path / "bad.yaml").write_text("id: [\n")
    monkeypatch.setenv("CRUCIBLE_STRICT", raw)
    if strict:
        with pytest.raises(ExperimentsNotLoaded, match=r"bad.yaml:2: \(root\): invalid YAML"):
            definitions_from_folder(tmp_path)
    else:
        assert _invalid(definitions_from_folder(tmp_path))


@pytest.mark.parametrize("raw", ["2", "maybe", " 1", "yes please", "1\x1b[31m"])
def test_a_bad_crucible_strict_names_the_variable_and_what_it_takes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, raw: str
) -> None:
    from crucible_dagster.dagster_plugin import definitions_from_folder

    (tmp_path / "good.yaml").write_text(GOOD.format(id="good"))
    monkeypatch.setenv("CRUCIBLE_STRICT", raw)
    with pytest.raises(ValueError) as raised:
        definitions_from_folder(tmp_path)
    message = str(raised.value)
    assert message.startswith("CRUCIBLE_STRICT: expected 1, true, yes, on (strict)")
    assert repr(raw) in message and "\x1b" not in message  # shown escaped, never raw


@pytest.mark.parametrize("shape", ["missing", "empty", "a file", "nothing declared"])
def test_a_missing_or_empty_folder_is_a_problem_in_both_modes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, shape: str
) -> None:
    project = Project(tmp_path, monkeypatch)
    attributes = (
        "  path: experiments\n" if shape != "nothing declared" else "  executor: in_process\n"
    )
    folder = project.component("exps", attributes, {})
    experiments = folder / "experiments"
    if shape == "missing":
        experiments.rmdir()
    if shape == "a file":
        experiments.rmdir()
        experiments.write_text("not a folder")
    expected = {
        "missing": "does not exist",
        "empty": "holds no",
        "a file": "is not a folder",
        "nothing declared": "the component declares no experiments",
    }[shape]
    (description,) = _invalid(project.load()).values()
    assert expected in description
    located = (
        "defs.yaml:2: (root): " if shape == "nothing declared" else "defs.yaml:3: attributes.path: "
    )
    assert f"{located}{'the' if shape == 'nothing declared' else 'the experiments folder'}" in (
        description
    )
    monkeypatch.setenv("CRUCIBLE_STRICT", "1")
    with pytest.raises(Exception) as raised:
        project.load()
    assert isinstance(_cause(raised.value), ExperimentsNotLoaded)
    assert expected in str(_cause(raised.value))


# --- item 3: duplicate ids across components --------------------------------------------


def test_an_id_two_components_define_loads_from_the_first_and_the_later_names_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Dagster failed the whole code location with "Duplicate asset key" and no file named."""
    project = Project(tmp_path, monkeypatch)
    first = project.component("a_exps", "  path: experiments\n", {"trace.yaml": TRACE})
    later = project.component(
        "b_exps",
        "  path: experiments\n",
        {"copy.yaml": "# the same id\n" + TRACE, "own.yaml": GOOD.format(id="own")},
    )
    defs = project.load()
    assert defs.resolve_job_def("trace_demo") and defs.resolve_job_def("own")
    invalid = _invalid(defs)
    (file,) = invalid
    assert file.endswith("b_exps/experiments/copy.yaml")
    id_line = TRACE.splitlines().index(
        next(li for li in TRACE.splitlines() if li.startswith("id:"))
    )
    assert (
        f"copy.yaml:{id_line + 2}: id: experiment id 'trace_demo' is already used by "
        in (invalid[file])
    )
    assert f"{first.name}/experiments/trace.yaml:{id_line + 1} (component " in invalid[file]
    assert f"{first.name}/defs.yaml)" in invalid[file]
    assert later.name in file

    monkeypatch.setenv("CRUCIBLE_STRICT", "1")
    with pytest.raises(Exception) as raised:
        project.load()
    text = str(_cause(raised.value))
    assert "copy.yaml" in text and "a_exps/experiments/trace.yaml" in text


def test_the_first_component_keeps_the_id_whichever_is_built_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dagster.components.core.component_tree import ComponentTree

    project = Project(tmp_path, monkeypatch)
    project.component("a_exps", "  path: experiments\n", {"one.yaml": GOOD.format(id="same")})
    later = project.component(
        "b_exps", "  path: experiments\n", {"two.yaml": GOOD.format(id="same")}
    )
    tree = ComponentTree.for_project(project.root)
    built_later = tree.build_defs(later)  # the later component alone, built before the first
    assert not built_later.jobs
    assert "is already used by" in next(iter(_invalid(built_later).values()))
    assert [job.name for job in tree.build_defs(project.defs / "a_exps").jobs] == ["same"]


def test_inline_entries_come_after_the_folders_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = Project(tmp_path, monkeypatch)
    project.component(
        "exps",
        "  path: experiments\n  experiments:\n    - id: same\n      pipeline: [{name: validate}]\n",
        {"file.yaml": GOOD.format(id="same")},
    )
    defs = project.load()
    assert defs.resolve_job_def("same")
    (description,) = _invalid(defs).values()
    assert "defs.yaml#experiments[0]:5: id: experiment id 'same' is already used by" in description
    assert "file.yaml:1, which is the one loaded" in description


# --- item 4: artifacts_dir ----------------------------------------------------------------


def _artifacts_of(defs: dg.Definitions, job: str | None) -> str | None:
    """The artifacts_dir a job's (or, for None, the report assets') crucible resource runs with."""
    resource = (
        defs.resolve_job_def(job).resource_defs["crucible"]
        if job is not None
        else defs.get_repository_def().get_top_level_resources()["crucible"]
    )
    return resource.config_field.default_value["artifacts_dir"]


def test_runs_go_under_the_project_root_whatever_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = Project(tmp_path, monkeypatch)
    folder = project.component("exps", "  path: experiments\n", {"a.yaml": TRACE})
    monkeypatch.chdir(folder)  # a launch from a subfolder wrote artifacts/ inside defs/
    defs = project.load()
    assert _artifacts_of(defs, "trace_demo") == str((project.root / "artifacts").resolve())
    with ephemeral_instance() as instance:
        result = defs.resolve_job_def("trace_demo").execute_in_process(instance=instance)
        assert result.success
        run_dir = project.root.resolve() / "artifacts" / "trace_demo" / result.run_id
        assert (run_dir / "manifest.json").is_file()
        said = [
            entry.user_message
            for entry in instance.all_logs(result.run_id)
            if entry.user_message.startswith("crucible: run directory")
        ]
    assert said == [f"crucible: run directory {run_dir}"]  # once per run, several steps
    assert not (folder / "artifacts").exists()
    # the report assets (Materialize) use the component's resource too
    assert _artifacts_of(defs, None) == str((project.root / "artifacts").resolve())


def test_artifacts_dir_inside_the_project_absolute_or_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = Project(tmp_path, monkeypatch)
    folder = project.component("exps", "  path: experiments\n  artifacts_dir: runs/crucible\n")
    (folder / "experiments" / "a.yaml").write_text(GOOD.format(id="a"))
    assert _artifacts_of(project.load(), "a") == str((project.root / "runs/crucible").resolve())
    elsewhere = tmp_path / "shared" / "artifacts"
    (folder / "defs.yaml").write_text(
        TYPE + f"attributes:\n  path: experiments\n  artifacts_dir: {elsewhere}\n"
    )
    assert _artifacts_of(project.load(), "a") == str(elsewhere)  # absolute: as written
    (folder / "defs.yaml").write_text(TYPE + "attributes:\n  path: experiments\n")
    monkeypatch.setenv("CRUCIBLE_ARTIFACTS_DIR", str(elsewhere))
    assert _artifacts_of(project.load(), "a") is None  # the deployment's, read at run start


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ('""', "expected a folder path, got ''"),
        ('"  "', "expected a folder path, got '  '"),
        ('"a\\tb"', "without control characters"),
        ('"s3://bucket/runs"', "found the URL 's3://bucket/runs'"),
        ("5", "valid string"),
        ("[runs]", "valid string"),
        ('"../outside"', "expected a folder inside the project root"),
        ('"link_out"', "expected a folder inside the project root"),
        ('"a_file"', "is not one"),
        ('"a_file/runs"', "a_file is a file"),  # a run's mkdir failed with NotADirectoryError
        ('"~/runs"', "expected a path written out (~ is not expanded), got '~/runs'"),
    ],
)
def test_a_bad_artifacts_dir_is_refused_at_its_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str, expected: str
) -> None:
    project = Project(tmp_path, monkeypatch)
    (project.root / "link_out").symlink_to(tmp_path)  # a symlink leading out of the project
    (project.root / "a_file").write_text("")
    folder = project.component("exps", f"  path: experiments\n  artifacts_dir: {value}\n")
    (folder / "experiments" / "a.yaml").write_text(GOOD.format(id="a"))
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    with pytest.raises(Exception) as raised:
        project.load()
    text = str(_cause(raised.value))
    assert expected in text
    assert "artifacts_dir" in text and "defs.yaml:4" in text
    created = sorted(
        p.relative_to(tmp_path) for p in tmp_path.rglob("*") if "__pycache__" not in str(p)
    )
    assert created == [p for p in before if "__pycache__" not in str(p)]  # nothing written


def test_two_components_with_different_artifacts_dirs_fail_naming_both(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = Project(tmp_path, monkeypatch)
    project.component("a_exps", "  path: experiments\n", {"a.yaml": GOOD.format(id="a")})
    project.component(
        "b_exps", "  path: experiments\n  artifacts_dir: other\n", {"b.yaml": GOOD.format(id="b")}
    )
    with pytest.raises(Exception) as raised:
        project.load()
    error = _cause(raised.value)
    assert isinstance(error, ExperimentError)
    assert "a_exps/defs.yaml" in str(error) and "b_exps/defs.yaml" in str(error)
    # the same folder (the default, twice) shares one resource: the location loads
    (project.defs / "b_exps" / "defs.yaml").write_text(TYPE + "attributes:\n  path: experiments\n")
    assert {job.name for job in project.load().jobs} >= {"a", "b"}


def test_scaffolding_adds_the_artifacts_folder_to_the_projects_gitignore(tmp_path: Path) -> None:
    from dagster.components.component_scaffolding import scaffold_object

    typename = "crucible_dagster.dagster_plugin.CrucibleExperimentsComponent"
    (tmp_path / ".gitignore").write_bytes(b"__pycache__/\n.venv")  # no final newline
    for name in ("first", "second"):  # a second component: the line is not added twice
        target = tmp_path / "src" / "proj" / "defs" / name
        scaffold_object(target, typename, f'{{"experiment_id": "{name}"}}', "yaml", tmp_path)
    assert (tmp_path / ".gitignore").read_bytes() == b"__pycache__/\n.venv\n/artifacts/\n"


def test_scaffolding_leaves_a_symlinked_gitignore_alone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from dagster.components.component_scaffolding import scaffold_object

    kept = tmp_path / "elsewhere.txt"
    kept.write_text("keep\n")
    (tmp_path / ".gitignore").symlink_to(kept)
    target = tmp_path / "defs" / "exps"
    typename = "crucible_dagster.dagster_plugin.CrucibleExperimentsComponent"
    scaffold_object(target, typename, '{"experiment_id": "first"}', "yaml", tmp_path)
    assert kept.read_text() == "keep\n" and (tmp_path / ".gitignore").is_symlink()
    (line,) = capsys.readouterr().err.splitlines()
    assert line == (
        f"crucible: {tmp_path / '.gitignore'}: not edited: it is a symlink; add the line "
        "/artifacts/ to it yourself"
    )
    assert (target / "experiments" / "first.yaml").is_file()  # the scaffold itself is done
    assert os.path.exists(target / "defs.yaml")
    shutil.rmtree(target)


@pytest.mark.parametrize(
    ("given", "said"),
    [
        ('"bad id!"', "expected an experiment id of letters, digits and underscores (a valid "
         "Dagster name), got 'bad id!'; try 'bad_id'"),
        ("5", "expected a string, got 5"),
        ('"../escape"', "got '../escape'"),
        ('"config"', "got 'config' (a word Dagster or Python reserves); try 'config_1'"),
        ('"defs"', "the file defs.yaml would be read by dg as a component's"),
    ],
)  # fmt: skip
def test_scaffolding_a_bad_experiment_id_is_one_line_and_leaves_nothing(
    tmp_path: Path, given: str, said: str
) -> None:
    """``dg scaffold defs`` prints a ``click.ClickException`` as one ``Error:`` line; the id is
    checked as the parameters are read, before Dagster makes the folder."""
    import click
    from dagster.components.component_scaffolding import scaffold_object

    target = tmp_path / "defs" / "exps"
    typename = "crucible_dagster.dagster_plugin.CrucibleExperimentsComponent"
    with pytest.raises(click.ClickException) as raised:
        scaffold_object(target, typename, f'{{"experiment_id": {given}}}', "yaml", tmp_path)
    message = raised.value.format_message()
    assert message.startswith("crucible: --json-params experiment_id: ") and said in message
    assert "\n" not in message
    assert list(tmp_path.iterdir()) == []  # no folder, no .gitignore


@pytest.mark.parametrize(
    ("given", "said"),
    [
        ('{"experimentid": "first"}', "unknown key 'experimentid'; expected experiment_id"),
        ("[1, 2]", "expected an object such as"),
    ],
)
def test_scaffolding_params_that_are_not_an_experiment_id_are_one_line(
    tmp_path: Path, given: str, said: str
) -> None:
    """A misspelt key once gave the default id without a word; a list, pydantic's JSON dump."""
    import click
    from dagster.components.component_scaffolding import scaffold_object

    target = tmp_path / "defs" / "exps"
    typename = "crucible_dagster.dagster_plugin.CrucibleExperimentsComponent"
    with pytest.raises(click.ClickException) as raised:
        scaffold_object(target, typename, given, "yaml", tmp_path)
    message = raised.value.format_message()
    assert message.startswith("crucible: --json-params: ") and said in message
    assert "\n" not in message
    assert list(tmp_path.iterdir()) == []  # no folder, no .gitignore


def test_two_components_each_with_a_broken_file_of_one_name_both_load(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each broken file's asset is keyed from the defs root, its component's folder included:
    two components' ``wip.yaml`` were one key, and Dagster failed the whole location."""
    project = Project(tmp_path, monkeypatch)
    for name in ("a_exps", "b_exps"):
        project.component(
            name,
            "  path: experiments\n",
            {f"{name}.yaml": GOOD.format(id=name), "wip.yaml": "id: [unclosed\n"},
        )
    defs = project.load()
    assert {job.name for job in defs.jobs} >= {"a_exps", "b_exps"}
    invalid = sorted(Path(f).parent.parent.name for f in _invalid(defs))
    assert invalid == ["a_exps", "b_exps"]


def test_an_artifacts_dir_inside_the_experiments_folder_is_refused_at_its_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every file of a run directory there would be read back as a broken experiment."""
    project = Project(tmp_path, monkeypatch)
    inside = project.defs.relative_to(project.root) / "exps" / "experiments" / "runs"
    folder = project.component("exps", f"  path: experiments\n  artifacts_dir: {inside}\n")
    (folder / "experiments" / "a.yaml").write_text(GOOD.format(id="a"))
    with pytest.raises(Exception) as raised:
        project.load()
    text = str(_cause(raised.value))
    assert "outside the experiments folder" in text and "defs.yaml:4" in text, text
    assert not (folder / "experiments" / "runs").exists()


def test_a_strict_load_lists_every_components_problems(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Dagster stops at the first component that fails: its error names the others' problems
    too, so one CI run lists them all (it listed the first component's alone)."""
    project = Project(tmp_path, monkeypatch)
    for name in ("a_exps", "b_exps"):
        project.component(name, "  path: experiments\n", {f"{name}_bad.yaml": "id: [\n"})
    monkeypatch.setenv("CRUCIBLE_STRICT", "1")
    with pytest.raises(Exception) as raised:
        project.load()
    error = _cause(raised.value)
    assert isinstance(error, ExperimentsNotLoaded)
    for name in ("a_exps", "b_exps"):
        assert f"{name}_bad.yaml:2: (root): invalid YAML" in str(error), str(error)
