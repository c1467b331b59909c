"""What a crucible component checks beyond its own experiments: where its run directories go
(``artifacts_dir``, resolved from the project root, never the working directory), and what
the code location's other crucible components hold (an experiment id one of them loads
already; an artifacts folder that differs from theirs).

Dagster merges the definitions of a code location's components itself: two components
defining one experiment id failed the whole location with "Duplicate asset key" and no file
named. Each component looks, through the component tree, at the crucible components before
it in path order (their checked files are computed once and shared), so the first one keeps
the id whichever component is built first.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import dagster as dg

from crucible_dagster.common.locations import local_path
from crucible_dagster.dagster_plugin.definitions import INVALID_SENSOR
from crucible_dagster.experiment.loading import display_path, read_document
from crucible_dagster.experiment.problems import ExperimentError, Problem
from crucible_dagster.runtime.run_dirs import ARTIFACTS_ENV

#: the run directories' folder under the project root when a component names none
DEFAULT_ARTIFACTS = "artifacts"
Lines = dict[tuple[str | int, ...], int]


def check_artifacts_dir(value: str) -> str:
    """What ``artifacts_dir`` may hold, whatever the project: a local folder path, written out."""
    if not value.strip():
        raise ValueError(f"expected a folder path, got {value!r}")
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise ValueError(f"expected a folder path without control characters, got {value!r}")
    local_path(value, "artifacts_dir")  # a URL is refused, saying what to use instead
    if value.startswith("~"):  # a folder named '~' in the project invites an `rm -rf ~`
        raise ValueError(f"expected a path written out (~ is not expanded), got {value!r}")
    return value


def resolve_artifacts_dir(
    value: str | None,
    project_root: Path,
    defs_file: Path,
    lines: Lines,
    experiments: Path | None = None,
) -> str | None:
    """The folder this component's runs write to, absolute: ``value`` relative to the project
    root (it must stay inside it, symlinks resolved: write an absolute path for a folder
    elsewhere), or absolute as written. Unset: None when ``$CRUCIBLE_ARTIFACTS_DIR`` is set
    (the deployment's, read when the run starts), else ``<project root>/artifacts``."""
    where = Problem(
        "", "attributes.artifacts_dir", display_path(defs_file), lines.get(_ARTIFACTS_LINE)
    )
    if value is None:
        if os.environ.get(ARTIFACTS_ENV):
            return None
        value = DEFAULT_ARTIFACTS
        where = replace(where, field="attributes", line=lines.get(("attributes",)))
    root = project_root.resolve()
    target = Path(value)
    if not target.is_absolute():
        target = (root / target).resolve()
        if not target.is_relative_to(root):
            message = (
                f"expected a folder inside the project root {root} (or an absolute path), got "
                f"{value!r}, which leads to {target}"
            )
            raise ExperimentError([replace(where, message=message)])
    unusable = _unusable(target.resolve(), experiments)
    if unusable:
        raise ExperimentError([replace(where, message=unusable)])
    return str(target.resolve())


def _unusable(target: Path, experiments: Path | None) -> str | None:
    """Why runs could not write to ``target``, found as the code loads rather than as a run's
    traceback: not a folder, under a file, not writable, or inside the experiments folder
    (every file of a run directory would be read as a broken experiment)."""
    if experiments is not None and target.is_relative_to(experiments.resolve()):
        return (
            f"expected a folder outside the experiments folder {experiments}, got {target}: "
            "the run directories' files would be read as experiments"
        )
    if target.exists() and not target.is_dir():
        return f"expected a folder for the run directories, but {target} is not one"
    existing = next(p for p in (target, *target.parents) if p.exists())
    if not existing.is_dir():
        return f"expected a folder for the run directories, but {existing} is a file"
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"expected a folder the runs can write to, but {existing} is not writable"
    return None


_ARTIFACTS_LINE = ("attributes", "artifacts_dir")


def crucible_components(
    context: dg.ComponentLoadContext, kind: type
) -> Iterator[tuple[bool, Path, Any]]:
    """Every other component of type ``kind`` (the crucible component) in the code location,
    in path order: whether it comes before this one, its folder, the component (loaded once;
    Dagster caches it). A test tree (``build_defs_for_component``) has no others."""
    from dagster.components.core.component_tree import TestComponentTree
    from dagster.components.core.defs_module import ComponentPath

    tree = context.component_tree
    if isinstance(tree, TestComponentTree):
        return
    found: list[tuple[tuple[str, str], Any]] = []
    for loc, decl in tree.find_root_decl().iterate_loc_component_decl_pairs():
        try:
            declared = decl.component_type
        except Exception:  # Dagster reports a type it cannot import when it loads that one
            continue
        if isinstance(loc, ComponentPath) and _is_sub(declared, kind):
            found.append(((loc.file_path_posix, str(loc.instance_key or "")), (loc, decl)))
    mine = context.component_loc
    if not isinstance(mine, ComponentPath):
        return
    own_key = (mine.file_path_posix, str(mine.instance_key or ""))
    for key, (loc, decl) in sorted(found, key=lambda item: item[0]):
        if key == own_key:
            continue
        try:
            other = tree.load_structural_component_at_loc(loc)
        except Exception:  # one that does not load fails the location itself, by Dagster
            continue
        if isinstance(other, kind):
            yield key < own_key, Path(decl.context.path), other


def _is_sub(kind: Any, base: type) -> bool:
    return isinstance(kind, type) and issubclass(kind, base)


def earlier_ids(context: dg.ComponentLoadContext, kind: type) -> dict[str, str]:
    """Experiment id -> where it is defined (file:line and component), for every experiment
    the crucible components before this one load: the first in path order keeps an id."""
    taken: dict[str, str] = {}
    for before, folder, other in crucible_components(context, kind):
        if not before:
            continue
        defs_file = display_path(folder / "defs.yaml")
        for item in other.checked_files(folder):
            if item.experiment is not None:
                taken.setdefault(item.experiment.id, f"{item.id_place} (component {defs_file})")
    return taken


def problems_elsewhere(context: dg.ComponentLoadContext, kind: type) -> list[Problem]:
    """Every problem of the code location's other crucible components, in path order: a strict
    load lists them with this component's, so one CI run names them all."""
    return [
        problem
        for _, folder, other in crucible_components(context, kind)
        for item in other.checked_files(folder)
        for problem in item.problems
    ]


def artifacts_clash(context: dg.ComponentLoadContext, kind: type, artifacts: str | None) -> None:
    """Components of one code location share one ``crucible`` resource (the report assets'),
    so they must write to one artifacts folder: a difference fails the load naming both."""
    defs_file = Path(context.path) / "defs.yaml"
    for _, folder, other in crucible_components(context, kind):
        other_defs = folder / "defs.yaml"
        try:
            theirs = resolve_artifacts_dir(
                other.artifacts_dir, Path(context.project_root), other_defs, {}
            )
        except ExperimentError:  # its own build says what is wrong with it
            continue
        if theirs != artifacts:
            lines = defs_lines(defs_file)
            message = (
                f"this component writes runs to {artifacts or '$' + ARTIFACTS_ENV} but "
                f"{display_path(other_defs)} writes them to {theirs or '$' + ARTIFACTS_ENV}; "
                "the components of one code location share one artifacts_dir (give them the "
                "same one, or put them in separate code locations)"
            )
            line = lines.get(_ARTIFACTS_LINE) or lines.get(("attributes",))
            problem = Problem(message, "attributes.artifacts_dir", display_path(defs_file), line)
            raise ExperimentError([problem])


def defs_lines(defs_file: Path) -> Lines:
    """The defs.yaml's field -> line map (empty when it cannot be read so: a multi-document
    file, a component built in Python), so a component's own problems carry their line."""
    try:
        return read_document(defs_file).lines
    except Exception:  # no lines rather than a failure: the problems keep the file's name
        return {}


def invalid_sensor_name(context: dg.ComponentLoadContext) -> str:
    """The component's failing sensor, named after its folder under the defs root
    (``crucible_invalid_experiments__exps``): each component with broken experiments has its
    own, and Dagster refuses two definitions of one name in a code location."""
    try:
        relative = Path(context.path).relative_to(context.defs_module_path).as_posix()
    except ValueError:  # a test tree, or a folder outside the defs root: its own name
        relative = Path(context.path).name
    slug = re.sub(r"[^A-Za-z0-9_]", "_", relative).strip("_")
    return f"{INVALID_SENSOR}__{slug}" if slug else INVALID_SENSOR
