"""Code named in files (issue 22, section 4): every kind x every hostile name, through
``crucible validate``, the Dagster loader and run start.

Each case asserts: exit 1 with one line naming the file, the line and the field; no traceback;
nothing written (the tree before and after); and nothing called (the named code would write a
marker file, and ``os:system`` is given a command that would create it too).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from crucible_dagster.experiment.loading import (
    experiment_from_document,
    loads_experiment,
    read_document,
)
from crucible_dagster.runtime.runner import run
from tests.hostile.conftest import Cli, snapshot
from tests.hostile.named_code import MARKER_ENV

MOD = "tests.hostile.named_code"
STDLIB = "names the standard library"


@dataclass(frozen=True)
class Site:
    """Where a kind of code is named in a file: the YAML around the name, and the field."""

    template: str
    field: str
    line: int
    is_class: bool


SITES: dict[str, Site] = {
    "stage": Site(
        "id: dotted\npipeline:\n  - name: s\n    module: '{name}'\n", "pipeline[0].module", 4, True
    ),
    "backend": Site(
        "id: dotted\nbackend:\n  id: '{name}'\npipeline:\n  - name: predict\n",
        "backend.id",
        3,
        True,
    ),
    # a fallback is checked whatever the primary: noop ("no model") included (attack A2)
    "noop_fallback": Site(
        "id: dotted\nbackend:\n  id: noop\n  fallback: {{id: '{name}'}}\npipeline:\n"
        "  - name: predict\n",
        "backend.fallback.id",
        4,
        True,
    ),
    "estimator": Site(
        "id: dotted\nbackend:\n  id: sklearn\n  options:\n    estimator: '{name}'\n"
        "    params: {{command: 'touch {marker}'}}\n"
        "pipeline:\n  - name: predict\n    options: {{cv_folds: 2}}\n",
        "backend.options.estimator",
        5,
        True,
    ),
    "factory": Site(
        "id: dotted\nbackend:\n  id: sklearn\n  options:\n    factory: '{name}'\n"
        "pipeline:\n  - name: predict\n",
        "backend.options.factory",
        5,
        False,
    ),
    "function": Site(
        "id: dotted\nbackend:\n  id: callable\n  options:\n    function: '{name}'\n"
        "pipeline:\n  - name: predict\n",
        "backend.options.function",
        5,
        False,
    ),
    "checker": Site(
        "id: dotted\npipeline:\n  - name: data_checks\n    options:\n      checker: '{name}'\n",
        "pipeline[0].options.checker",
        5,
        False,
    ),
    "adapter": Site(
        "id: dotted\npipeline:\n  - name: guardrails\n    options:\n      adapter: '{name}'\n",
        "pipeline[0].options.adapter",
        5,
        True,
    ),
    "scorer": Site(
        "id: dotted\npipeline:\n  - name: score\n    options:\n      scorers:\n"
        "        - {{name: first, id: exact_match}}\n        - id: '{name}'\n",
        "pipeline[0].options.scorers[1].id",
        7,
        True,
    ),
    # a judge's backend is named code inside a scorer's options
    "judge_backend": Site(
        "id: dotted\npipeline:\n  - name: score\n    options:\n      scorers:\n"
        "        - id: judge\n          options:\n            rubric: 'Rate {{{{ prediction }}}}'\n"
        "            backend: {{id: '{name}'}}\n",
        "pipeline[0].options.scorers[0].options",
        7,
        True,
    ),
    "variant_estimator": Site(
        "id: dotted\npipeline:\n  - name: predict\n    options:\n      variants:\n"
        "        m:\n          id: sklearn\n          options: {{estimator: '{name}'}}\n",
        "pipeline[0].options.variants.m.options.estimator",
        8,
        True,
    ),
    "member_function": Site(
        "id: dotted\nreliability:\n  ensemble: {{strategy: majority}}\npipeline:\n"
        "  - name: ensemble\n    options:\n      members:\n"
        f"        a: {{{{id: callable, options: {{{{function: '{MOD}:good_function'}}}}}}}}\n"
        "        b: {{id: callable, options: {{function: '{name}'}}}}\n",
        "pipeline[0].options.members.b.options.function",
        9,
        False,
    ),
}


def _wrong_kind(site: Site) -> tuple[str, str]:
    """A function where a class is expected, a class where a function is."""
    if site.is_class:
        return f"{MOD}:writes_marker", "is a function, not"
    return f"{MOD}:WritesMarker", "is a class, not"


# (case id, the name or a function of the site giving (name, phrase))
NAMES: list[tuple[str, Callable[[Site], tuple[str, str]]]] = [
    ("os_system", lambda s: ("os:system", STDLIB)),
    ("builtins_eval", lambda s: ("builtins:eval", STDLIB)),
    ("subprocess_run", lambda s: ("subprocess:run", STDLIB)),
    ("stdlib_reexported", lambda s: (f"{MOD}:run", "from the standard library ('subprocess')")),
    ("math_sqrt", lambda s: ("math:sqrt", STDLIB)),
    (
        "packaging_tool",
        lambda s: ("setuptools._distutils.spawn:spawn", "names the packaging tools"),
    ),
    ("c_function", lambda s: ("numpy:frombuffer", "is a built-in (C) function, not")),
    ("wrong_kind", _wrong_kind),
    ("missing_module", lambda s: ("tests.hostile.no_such_module:Thing", "cannot find module")),
    ("exits_at_import", lambda s: ("tests.hostile.exits_at_import:Thing", "SystemExit")),
    ("raises_at_import", lambda s: ("tests.hostile.fails_at_import:Thing", "broken module")),
    (
        "interrupts_at_import",
        lambda s: ("tests.hostile.interrupts_at_import:Thing", "KeyboardInterrupt"),
    ),
]

CASES = [pytest.param(kind, make, id=f"{kind}-{case}") for kind in SITES for case, make in NAMES]


@pytest.fixture
def marker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The file any named code writes when called: it must never exist."""
    path = tmp_path / "called"
    monkeypatch.setenv(MARKER_ENV, str(path))
    return path


def _write(folder: Path, kind: str, name: str, marker: Path, stem: str = "exp") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{stem}.yaml"
    path.write_text(SITES[kind].template.format(name=name, marker=marker))
    return path


@pytest.mark.parametrize(("kind", "make"), CASES)
def test_validate_refuses_it_in_one_line_naming_file_line_and_field(
    cli: Cli, tmp_path: Path, marker: Path, kind: str, make: Callable[[Site], tuple[str, str]]
) -> None:
    site = SITES[kind]
    name, phrase = make(site)
    path = _write(tmp_path / "exps", kind, name, marker)
    before = snapshot(tmp_path)
    said = cli("validate", path)
    assert said.code == 1, said.text
    lines = said.out.splitlines()
    assert len(lines) == 1, said.text
    assert lines[0].startswith(f"{path}:{site.line}: {site.field}: "), lines[0]
    assert phrase in lines[0] and name in lines[0], lines[0]
    assert snapshot(tmp_path) == before, "validate wrote or changed a file"
    assert not marker.exists(), "the named code was called"


def _samples() -> dict[str, object]:
    return {
        "features": pd.DataFrame({"x": [0.0, 1.0, 0.0, 1.0]}),
        "target": np.array([0, 1, 0, 1]),
        "examples": [{"input": "a", "output": "b"}],
    }


@pytest.mark.parametrize(("kind", "make"), CASES)
def test_run_start_refuses_it_before_anything_is_called(
    tmp_path: Path, marker: Path, kind: str, make: Callable[[Site], tuple[str, str]]
) -> None:
    """The run checks by itself (no validate before it): the stage that names the code fails
    with the reason, the record ends ``failed``, and the code was never called."""
    name, phrase = make(SITES[kind])
    path = _write(tmp_path / "exps", kind, name, marker)
    experiment = experiment_from_document(read_document(path))
    artifacts = tmp_path / "artifacts"
    before = snapshot(tmp_path / "exps")
    result = run(experiment, assigns=_samples(), artifacts_root=str(artifacts), run_id="r")
    assert result.failure is not None, "the run went ahead"
    assert phrase in result.failure.message and name in result.failure.message
    assert "Traceback" not in result.failure.message
    manifest = json.loads((artifacts / "dotted" / "r" / "manifest.json").read_text())
    assert manifest["status"] == "failed"
    assert snapshot(tmp_path / "exps") == before
    assert {p.name for p in tmp_path.iterdir()} == {"exps", "artifacts"}
    assert not marker.exists(), "the named code was called"


@pytest.mark.parametrize("kind", sorted(SITES))
def test_what_a_module_prints_while_importing_stays_out_of_validates_output(
    cli: Cli, tmp_path: Path, marker: Path, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    """stdout holds the problem lines only: a module's print goes to stderr."""
    monkeypatch.delitem(sys.modules, "tests.hostile.prints_at_import", raising=False)
    path = _write(tmp_path, kind, "tests.hostile.prints_at_import:printed", marker)
    said = cli("validate", path)
    assert said.code == 1, said.text
    assert "hello from an imported module" in said.err
    assert "hello" not in said.out and len(said.out.splitlines()) == 1, said.out


GOOD = {
    "stage": "crucible_dagster.stages.validate:ValidateStage",
    "estimator": f"{MOD}:GoodEstimator",
    "factory": f"{MOD}:good_factory",
    "function": f"{MOD}:good_function",
    "checker": f"{MOD}:good_checker",
    "adapter": f"{MOD}:GoodAdapter",
    "scorer": f"{MOD}:GoodScorer",
}


@pytest.mark.parametrize("kind", sorted(GOOD))
def test_a_users_code_of_the_right_kind_is_accepted(
    cli: Cli, tmp_path: Path, marker: Path, kind: str
) -> None:
    """The check refuses by kind, not everything: the user's own class or function passes."""
    path = _write(tmp_path, kind, GOOD[kind], marker)
    said = cli("validate", path)
    assert said.code == 0, said.text


@pytest.mark.slow
def test_the_dagster_loader_loads_the_others_and_reports_each_one(
    tmp_path: Path, marker: Path
) -> None:
    import dagster as dg

    from crucible_dagster.dagster_plugin import definitions_from_folder

    folder = tmp_path / "experiments"
    expected: dict[str, tuple[str, str, str]] = {}
    for kind, site in SITES.items():
        for case, make in NAMES:
            name, phrase = make(site)
            stem = f"{kind}_{case}"
            _write(folder, kind, name, marker, stem)
            expected[f"{stem}.yaml"] = (f"{stem}.yaml:{site.line}: {site.field}: ", phrase, name)
    (folder / "good.yaml").write_text("id: good\npipeline:\n  - name: validate\n")
    defs = definitions_from_folder(folder)
    assert defs.resolve_job_def("good").name == "good"
    invalid = {
        Path(a.metadata["file"]).name: a.description or ""
        for a in defs.assets
        if isinstance(a, dg.AssetSpec) and a.group_name == "crucible_invalid_experiments"
    }
    assert set(invalid) == set(expected)
    for file_name, (where, phrase, name) in expected.items():
        assert where in invalid[file_name] and phrase in invalid[file_name], invalid[file_name]
        assert name in invalid[file_name]
    assert not marker.exists(), "the named code was called"


LAUNCHPAD_FILE = (
    "id: launchpad\npipeline:\n"
    "  - name: seed\n    module: crucible_dagster.contrib.examples:SeedExamples\n"
    "  - name: data_checks\n  - name: guardrails\n"
)
# (node, the value typed into the Launchpad, phrase)
LAUNCHPAD_CASES = [
    ("data_checks", {"checker": "os:system"}, STDLIB),
    ("data_checks", {"checker": f"{MOD}:WritesMarker"}, "is a class, not"),
    ("guardrails", {"adapter": f"{MOD}:writes_marker"}, "is a function, not"),
    ("guardrails", {"adapter": f"{MOD}:run"}, "from the standard library ('subprocess')"),
]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("node", "config", "phrase"),
    LAUNCHPAD_CASES,
    ids=["checker_os_system", "checker_class", "adapter_function", "adapter_reexported"],
)
def test_a_dagster_run_refuses_named_code_typed_in_the_launchpad_before_the_first_stage(
    artifacts_dir: Path, marker: Path, node: str, config: dict[str, str], phrase: str
) -> None:
    """Run start under Dagster: the run config's options are checked before any stage runs,
    so code named there is refused as the file's would be, the record ends ``failed``."""
    import dagster as dg

    from crucible_dagster.dagster_plugin import build_job
    from tests.dagster_helpers import ephemeral_instance

    job = build_job(loads_experiment(LAUNCHPAD_FILE))
    with ephemeral_instance() as instance:
        result = job.execute_in_process(
            instance=instance,
            run_config={"ops": {node: {"config": config}}},
            raise_on_error=False,
        )
    assert not result.success
    failures = [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE]
    assert [f.step_key for f in failures] == ["seed"], "it failed before the first stage ran"
    message = failures[0].step_failure_data.error.message
    field = next(iter(config))
    assert f"{node}.{field}: " in message and phrase in message, message
    manifest = json.loads(
        (artifacts_dir / "launchpad" / result.run_id / "manifest.json").read_text()
    )
    assert manifest["status"] == "failed"
    assert manifest["stages"]["seed"]["status"] != "completed"
    assert not marker.exists(), "the named code was called"


def test_a_registry_entry_no_stage_uses_is_checked_too(
    cli: Cli, tmp_path: Path, marker: Path
) -> None:
    """Every dotted path in the file, used or not: one line per entry, each naming its key."""
    path = tmp_path / "exp.yaml"
    path.write_text(
        "id: dotted\nregistry:\n  pwn: 'os:system'\n"
        f"  wrong: '{MOD}:writes_marker'\n  fine: 'crucible_dagster.stages.validate:ValidateStage'\n"
        "pipeline:\n  - name: validate\n"
    )
    said = cli("validate", path)
    assert said.code == 1, said.text
    assert said.out.splitlines() == [
        f"{path}:3: registry.pwn: 'os:system' names the standard library ('os'), not a "
        "crucible_dagster Stage subclass; it was not imported or called",
        f"{path}:4: registry.wrong: '{MOD}:writes_marker' is a function, not a "
        "crucible_dagster Stage subclass; it was not called",
    ]
    assert not marker.exists()


def test_crucible_run_refuses_the_file_before_its_first_stage_and_writes_no_run(
    cli: Cli, tmp_path: Path, artifacts_dir: Path, marker: Path
) -> None:
    """The command checks every dotted path of the file first: the seed stage before the bad
    checker never runs, and no run directory is created."""
    path = tmp_path / "exp.yaml"
    path.write_text(
        "id: dotted\npipeline:\n"
        "  - name: seed\n    module: crucible_dagster.contrib.examples:SeedExamples\n"
        f"  - name: data_checks\n    options:\n      checker: '{MOD}:WritesMarker'\n"
    )
    before = snapshot(tmp_path)
    said = cli("run", path)
    assert said.code == 1, said.text
    assert said.err.splitlines()[0].startswith(f"{path}:7: pipeline[1].options.checker: ")
    assert "is a class, not a function checker" in said.err
    assert not artifacts_dir.exists(), "a run directory was created"
    assert snapshot(tmp_path) == before
    assert not marker.exists()


def test_the_standalone_run_refuses_a_later_stages_code_before_the_first_stage_runs(
    tmp_path: Path, marker: Path
) -> None:
    """As the Dagster run and ``crucible run`` do: no stage runs when a later one names code
    of the wrong kind; that stage fails with the reason and the record ends ``failed``."""
    experiment = loads_experiment(
        "id: dotted\npipeline:\n"
        "  - name: seed\n    module: crucible_dagster.contrib.examples:SeedExamples\n"
        f"  - name: data_checks\n    options:\n      checker: '{MOD}:WritesMarker'\n"
    )
    artifacts = tmp_path / "artifacts"
    result = run(experiment, artifacts_root=str(artifacts), run_id="r")
    assert result.failure is not None and result.failure.stage == "data_checks"
    assert "is a class, not a function checker" in result.failure.message
    assert [name for name, _ in result.outcomes] == ["data_checks"], "the seed stage ran"
    assert "examples_loaded" not in result.context.metrics
    manifest = json.loads((artifacts / "dotted" / "r" / "manifest.json").read_text())
    assert manifest["status"] == "failed"
    assert manifest["stages"]["seed"]["status"] == "pending"
    assert not marker.exists()


def test_a_noop_backends_fallback_is_refused_before_the_first_stage_runs(
    cli: Cli, tmp_path: Path, artifacts_dir: Path, marker: Path
) -> None:
    """``backend: {id: noop, fallback: ...}``: the fallback is named code like any backend, so
    ``crucible run`` refuses it at its line before the seed stage runs (attack A2: the run
    used to start, and import the fallback only when predict came)."""
    path = tmp_path / "exp.yaml"
    path.write_text(
        "id: dotted\nbackend:\n  id: noop\n"
        f"  fallback: {{id: '{MOD}:writes_marker', options: {{bogus: 1}}}}\npipeline:\n"
        "  - name: seed\n    module: crucible_dagster.contrib.examples:SeedExamples\n"
        "  - name: predict\n"
    )
    before = snapshot(tmp_path)
    said = cli("run", path)
    assert said.code == 1, said.text
    first = said.err.splitlines()[0]
    assert first.startswith(f"{path}:4: backend.fallback.id: "), first
    assert "is a function, not" in first and "Traceback" not in said.text
    assert "[1/" not in said.err, "a stage started"
    assert not artifacts_dir.exists(), "a run directory was created"
    assert snapshot(tmp_path) == before
    assert not marker.exists()
