"""Our own code uses the translator's spec methods and the IR's ``dagster:`` block only.

The deprecated aliases (``translator_legacy``) and the old read-only properties
(``experiment.executor``, ``experiment.automation``, ``sweep.mode``, ``sweep.pool``) stay for
users' code for a release; once nothing of ours calls them they can go. The scan reads the
source with ``ast`` (no import), so it is fast and sees code that no test runs.
"""

from __future__ import annotations

import ast
from pathlib import Path

from tests.source_scan import ROOT as REPO
from tests.source_scan import nodes, python_files, tree

SCANNED = [REPO / "crucible_dagster", REPO / "benchmarks"]
#: where the deprecated names are defined, not used
LEGACY_MODULE = REPO / "crucible_dagster" / "dagster_plugin" / "translator_legacy.py"


def _replaced_by() -> dict[str, str]:
    """The legacy module's ``REPLACED_BY`` literal, read from its source: importing it would
    import the adapter, and with it Dagster, into a unit test."""
    for node in tree(LEGACY_MODULE).body:
        if isinstance(node, ast.Assign) and [getattr(t, "id", "") for t in node.targets] == [
            "REPLACED_BY"
        ]:
            return dict(ast.literal_eval(node.value))
    raise AssertionError(f"{LEGACY_MODULE}: no REPLACED_BY mapping")


#: deprecated translator method -> the spec method that replaces it
REPLACED_BY = _replaced_by()
IR = REPO / "crucible_dagster" / "experiment" / "ir"
#: old IR attribute -> the block it moved to (``experiment.dagster``, ``experiment.dagster.sweep``)
OLD_PROPERTIES = {"executor": "dagster", "automation": "dagster", "mode": "sweep", "pool": "sweep"}
#: Dagster's own module (``@dg.executor``) is never the IR
DAGSTER_MODULE = {"dg", "dagster"}
#: receivers of one of those names that are not the IR: the Dagster component's own
#: ``executor`` field (its default for a folder)
NOT_THE_IR = {
    ("crucible_dagster/dagster_plugin/component.py", "self", "executor"),
    # json_match's own option (mode: all or fraction), read as options.mode and self.options.mode
    ("crucible_dagster/scorers/structured.py", "options", "mode"),
    # early stopping's own mode (min or max), read as self.mode
    ("crucible_dagster/experiment/ir/lifecycle.py", "self", "mode"),
}


def _sources() -> list[Path]:
    files = [path for root in SCANNED for path in python_files(root)]
    return [path for path in files if path != LEGACY_MODULE]


def _property_bodies(module: ast.AST) -> set[int]:
    """Ids of the nodes inside the IR's definitions of the old properties (they read the block)."""
    inside: set[int] = set()
    for node in ast.walk(module):
        if isinstance(node, ast.FunctionDef) and node.name in OLD_PROPERTIES:
            inside.update(id(child) for child in ast.walk(node))
    return inside


def _new_spelling(receiver: ast.expr, name: str) -> bool:
    """``x.dagster.executor`` and ``x.dagster.sweep.pool`` are the new spellings."""
    if OLD_PROPERTIES[name] == "dagster":
        return isinstance(receiver, ast.Attribute) and receiver.attr == "dagster"
    if isinstance(receiver, ast.Attribute) and receiver.attr == "sweep":
        return isinstance(receiver.value, ast.Attribute) and receiver.value.attr == "dagster"
    return isinstance(receiver, ast.Attribute) and receiver.attr == "dagster"


def _alias_calls(module: ast.AST) -> set[int]:
    """Ids of ``x.<alias>`` nodes that are called: ``spec.owners`` (an AssetSpec's field) and
    ``run.job_name`` (Dagster's) are attributes, ``translator.owners(e)`` is the alias."""
    return {
        id(node.func)
        for node in ast.walk(module)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in REPLACED_BY
    }


def _receiver_name(receiver: ast.expr) -> str:
    """``x`` of ``x.attr`` and ``options`` of ``self.options.attr``: what NOT_THE_IR names."""
    if isinstance(receiver, ast.Name):
        return receiver.id
    return receiver.attr if isinstance(receiver, ast.Attribute) else ""


def _uses(path: Path, root: Path = REPO) -> list[str]:
    """Each call of a deprecated translator alias and each read of an old IR property."""
    module = tree(path)
    skipped = _property_bodies(module) if path.is_relative_to(IR) else set()
    calls = _alias_calls(module)
    relative = path.relative_to(root).as_posix()
    found: list[tuple[int, str]] = []
    for node in nodes(path):
        if not isinstance(node, ast.Attribute) or id(node) in skipped:
            continue
        where = f"{relative}:{node.lineno}: .{node.attr}"
        if id(node) in calls:
            found.append((node.lineno, f"{where} (deprecated: use {REPLACED_BY[node.attr]})"))
        elif node.attr in OLD_PROPERTIES and not _new_spelling(node.value, node.attr):
            receiver = _receiver_name(node.value)
            if receiver not in DAGSTER_MODULE and (relative, receiver, node.attr) not in NOT_THE_IR:
                found.append(
                    (node.lineno, f"{where} (old IR property: read it in experiment.dagster)")
                )
    return [text for _, text in sorted(found)]


def test_no_code_of_ours_uses_a_deprecated_alias_or_an_old_ir_property() -> None:
    sources = _sources()
    assert len(sources) > 50  # the scan found the package
    found = [use for path in sources for use in _uses(path)]
    assert found == [], "\n".join(found)


def test_the_scan_finds_each_kind_of_old_use(tmp_path: Path) -> None:
    """The scan is not blind: alias calls and old property reads are found; the new
    spellings, and fields that share an alias's name, are not."""
    code = (
        "translator.report_asset_key(e, o)\n"
        "translator.node_name(e, 'plan')\n"
        "e.executor\n"
        "e.automation\n"
        "e.sweep.mode\n"
        "sweep.pool\n"
        "e.dagster.executor\n"
        "e.dagster.sweep.pool\n"
        "translator.get_asset_spec(e, o).key\n"
        "spec.owners, record.dagster_run.job_name, dg.executor\n"
    )
    path = tmp_path / "crucible_dagster" / "sample.py"
    path.parent.mkdir()
    path.write_text(code, encoding="utf-8")
    found = _uses(path, tmp_path)
    assert [line.split(": ", 1)[1].split(" ")[0] for line in found] == [
        ".report_asset_key",
        ".node_name",
        ".executor",
        ".automation",
        ".mode",
        ".pool",
    ], found
