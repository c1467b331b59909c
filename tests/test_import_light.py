"""The core never imports dagster; only crucible_dagster.dagster_plugin may."""

from __future__ import annotations

import ast
import functools
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, subprocess_env
from tests.source_scan import nodes, python_files, source


def _modules_after(code: str) -> set[str]:
    probe = f"{code}\nimport sys\nprint('\\n'.join(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        env=subprocess_env(),
    ).stdout
    return set(out.split())


@pytest.mark.slow
def test_core_does_not_import_dagster() -> None:
    modules = _modules_after(
        "import crucible_dagster, crucible_dagster.cli, crucible_dagster.runtime.runner, "
        "crucible_dagster.runtime.preflight, "
        "crucible_dagster.runtime.serialization, crucible_dagster.reports.stage, crucible_dagster.guardrails.stage"
    )
    assert not any(m == "dagster" or m.startswith("dagster.") for m in modules)


@pytest.mark.slow
def test_import_crucible_dagster_is_light() -> None:
    modules = _modules_after("import crucible_dagster")
    for heavy in ("dagster", "pandas", "scipy", "sklearn", "pyarrow"):
        assert heavy not in modules, heavy


@pytest.mark.slow
def test_stages_with_an_options_model_never_load_the_legacy_validator() -> None:
    """The original's options format is off the common path: describing and checking a stage
    that declares a pydantic Options model does not import ``experiment.legacy_options``."""
    modules = _modules_after(
        "from crucible_dagster.runtime.registry import Registry\n"
        "cls = Registry.default().resolve('data_checks')\n"
        "assert cls.describe()['name'] == 'data_checks'\n"
        "assert cls.check_options({'fail_fast': 3})\n"
        "cls.parse_options({'fail_fast': True})"
    )
    assert "crucible_dagster.runtime.stage" in modules
    assert "crucible_dagster.experiment.legacy_options" not in modules


@pytest.mark.slow
def test_a_legacy_stage_still_loads_its_validator_on_demand() -> None:
    modules = _modules_after(
        "from tests.helpers import NeedsInput\n"
        "assert NeedsInput.describe()['required'] == ['input']\n"
        "assert NeedsInput.check_options({'inptu': 'x'}) == "
        "['missing required option: input', 'inptu: unknown option']"
    )
    assert "crucible_dagster.experiment.legacy_options" in modules


@pytest.mark.slow
def test_loading_the_definitions_imports_no_numeric_library() -> None:
    """The webserver and `dagster job list` load every experiment; scipy, pandas and
    scikit-learn load only when a stage runs (the demo folder has a sweep and the classifiers)."""
    modules = _modules_after("import definitions")
    for heavy in ("pandas", "scipy", "sklearn", "pyarrow"):
        assert heavy not in modules, heavy


@pytest.mark.slow
def test_a_run_without_tables_imports_no_numeric_library(tmp_path: Path) -> None:
    """The core demo's stages (guardrails included) ask "is this a table?" without importing
    pandas: its import was a sixth of a small ``dagster job execute``."""
    modules = _modules_after(
        "from crucible_dagster.runtime.runner import run\n"
        "from crucible_dagster.experiment.loading import load_experiment\n"
        "result = run(load_experiment('experiments/core_pipeline_demo.yaml'), "
        f"artifacts_root={str(tmp_path)!r})\n"
        "assert result.status == 'completed', result"
    )
    assert "crucible_dagster.guardrails.stage" in modules
    for heavy in ("pandas", "scipy", "pyarrow"):
        assert heavy not in modules, heavy


def test_only_the_plugin_imports_dagster() -> None:
    for path in python_files():
        if "dagster_plugin" in path.parts:
            continue
        text = source(path)
        assert "import dagster" not in text and "from dagster" not in text, path


def test_bench_exports_survive_importing_every_submodule() -> None:
    """Lazy exports must not be shadowed by a submodule of the same name."""
    import importlib
    import pkgutil

    from crucible_dagster import bench

    for module in pkgutil.iter_modules(bench.__path__):
        importlib.import_module(f"crucible_dagster.bench.{module.name}")
    for name in bench.__all__:
        value = getattr(bench, name)
        assert not isinstance(value, type(bench)), f"bench.{name} is a module"


#: the floors every package above the runtime stands on
BASE = {"common", "bench", "experiment", "datasets", "runtime", "telemetry"}
#: what each package may import from the others (the layering the README describes): the domain
#: packages (one concept each) sit above the runtime and the run history, the CLI and the Dagster
#: adapter on top
ALLOWED = {
    "common": set(),
    "bench": {"common"},  # its lazy exports (common/lazy.py) and nothing else
    "experiment": {"common"},
    # the event schema, the writer and metrics: what the driver writes and the CLI reads
    "telemetry": {"common"},
    # the driver loads the run's dataset before the first stage (datasets stands on common,
    # experiment and the one resolver of named code only: see ALLOWED_MODULES)
    "runtime": {"common", "experiment", "bench", "datasets", "telemetry"},
    "datasets": {"common", "experiment"},
    "run_history": BASE,
    "hedging": BASE,
    "budget": BASE,
    "quality": BASE | {"run_history"},
    "backends": BASE | {"hedging", "budget"},
    "reports": BASE | {"run_history", "quality"},
    "scorers": BASE | {"backends"},
    "evaluation": BASE | {"backends", "hedging", "budget", "scorers"},
    "ensembles": BASE | {"backends", "hedging", "evaluation", "budget"},
    "fairness": BASE | {"evaluation"},
    "guardrails": BASE | {"evaluation"},
    "drift": BASE | {"lifecycle"},  # a reference from a registered model's lineage
    "feedback": BASE,
    "monitoring": BASE | {"run_history"},
    # the model lifecycle: the promotion gate is the regression gate's test
    "lifecycle": BASE | {"quality", "run_history"},
    "stages": BASE | {"run_history"},
    "racing": BASE | {"run_history"},
    "sweeps": BASE | {"reports", "budget", "racing"},
    "contrib": BASE | {"reports", "backends"},
    "cli": BASE
    | {"run_history", "reports", "sweeps", "budget", "backends", "evaluation", "lifecycle"},
    "dagster_plugin": {
        *BASE,
        "run_history",
        "hedging",
        "budget",
        "quality",
        "backends",
        "reports",
        "evaluation",
        "ensembles",
        "fairness",
        "guardrails",
        "drift",
        "feedback",
        "monitoring",
        "lifecycle",
        "stages",
        "sweeps",
        "racing",
    },
}


#: single modules a package may import beyond ALLOWED: datasets resolves a provider's dotted
#: path through the one resolver of named code, and nothing else of the runtime
ALLOWED_MODULES = {"datasets": {"crucible_dagster.runtime.code_refs"}}


@functools.cache
def _imports() -> dict[str, frozenset[str]]:
    """Each module of the package -> the package modules it imports (read from the source)."""
    edges: dict[str, frozenset[str]] = {}
    for path in python_files():
        module = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        edges[module] = frozenset(
            str(node.module)
            for node in nodes(path)
            if isinstance(node, ast.ImportFrom)
            and (node.module or "").startswith("crucible_dagster.")
        )
    return edges


def test_packages_depend_one_way_and_modules_have_no_cycles() -> None:
    edges = _imports()
    for module, targets in edges.items():
        package = module.split(".")[1] if module.count(".") >= 2 else None
        if package is None:
            continue
        assert package in ALLOWED, f"{package}: a package the layering does not place; add it"
        for target in targets:
            other = target.split(".")[1]
            allowed = other == package or other in ALLOWED[package]
            allowed = allowed or target in ALLOWED_MODULES.get(package, set())
            assert allowed, f"{module} imports {target}"

    def visit(module: str, path: tuple[str, ...]) -> None:
        for target in edges.get(module, ()):
            assert target not in path, f"import cycle: {' -> '.join((*path, target))}"
            if target not in done:
                visit(target, (*path, target))
        done.add(module)

    done: set[str] = set()
    for module in edges:
        visit(module, (module,))


#: every module of the package (issue 23) stays under these limits so none regrows into a heap
MAX_MODULE_LINES = 450
MAX_FUNCTION_LINES = 60


def test_every_module_and_function_stays_small() -> None:
    paths = python_files()
    assert len(paths) > 100, "the package was not found"
    too_big = []
    for path in paths:
        where = path.relative_to(ROOT)
        lines = len(source(path).splitlines())
        if lines > MAX_MODULE_LINES:
            too_big.append(f"{where}: {lines} lines")
        for node in nodes(path):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    too_big.append(f"{where}:{node.lineno} {node.name}: {length} lines")
    assert not too_big, too_big


def test_cli_is_imported_by_nothing_else() -> None:
    """The command line sits on top: no package of the library reaches back into it."""
    for module, targets in _imports().items():
        if not module.startswith("crucible_dagster.cli"):
            assert not any(t.startswith("crucible_dagster.cli") for t in targets), module
