"""Acceptance scenario 6 and stage resolution by entry point and dotted path."""

from __future__ import annotations

import pytest

from crucible_dagster.runtime.registry import Registry, StageResolutionError, load_stage_class
from tests.helpers import StageFail, StageOne


def test_scenario_6_registry() -> None:
    registry = Registry({"one": StageOne, "fail": StageFail}, include_installed=False)
    assert registry.resolve("one") is StageOne
    with pytest.raises(StageResolutionError) as err:
        registry.resolve("missing")
    assert err.value.reason == "unknown_stage"
    assert registry.names() == ["fail", "one"]
    with pytest.raises(StageResolutionError) as err:
        Registry({}, include_installed=False).resolve("one")
    assert err.value.reason == "no_stage_registry"


def test_builtins_come_from_the_entry_point_group() -> None:
    names = Registry.default().names()
    assert {"validate", "data_checks", "guardrails", "report"} <= set(names)


def test_dotted_path_and_configuration() -> None:
    assert load_stage_class("tests.helpers:StageOne") is StageOne
    registry = Registry.default().with_stages({"one": "tests.helpers:StageOne"})
    assert registry.resolve("one") is StageOne


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("os:system", "standard_library"),
        ("builtins:eval", "standard_library"),
        ("subprocess:Popen", "standard_library"),
        ("os.path", "unknown_stage"),
        ("../etc:passwd", "invalid_path"),
        ("tests.helpers:__class__", "invalid_path"),
        ("nope_pkg_xyz:Stage", "module_not_found"),
        ("tests.helpers:Missing", "attribute_not_found"),
    ],
)
def test_hostile_or_bad_paths_are_refused(path: str, reason: str) -> None:
    with pytest.raises(StageResolutionError) as err:
        Registry.default().resolve(path)
    assert err.value.reason == reason
    assert path.split(":")[0] in str(err.value) or reason == "unknown_stage"


def test_a_resolved_path_is_checked_again_once_its_module_or_attribute_changes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Resolutions are remembered (a folder names the same stages thousands of times), but a
    replaced attribute or a re-imported module is resolved and checked again."""
    import sys

    from crucible_dagster.runtime.code_refs import CodeRefError, resolve
    from tests import helpers

    assert resolve("tests.helpers:StageOne", "stage") is helpers.StageOne
    monkeypatch.setattr(helpers, "StageOne", print)
    with pytest.raises(CodeRefError):
        resolve("tests.helpers:StageOne", "stage")
    monkeypatch.undo()
    monkeypatch.delitem(sys.modules, "tests.helpers")
    fresh = resolve("tests.helpers:StageOne", "stage")
    assert fresh is sys.modules["tests.helpers"].StageOne
