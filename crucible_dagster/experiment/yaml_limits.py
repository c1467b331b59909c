"""Bounds on what an experiment document may be: depth, size after aliases, duplicate keys.

A YAML alias bomb is a few hundred bytes that expand to billions of nodes; a document nested
thousands deep exhausts the interpreter's stack. Both are refused from the parsed node tree,
in time linear in the file, before any data is built.
"""

from __future__ import annotations

from typing import Any

import yaml

from crucible_dagster.experiment.problems import ExperimentError, Problem

MAX_DEPTH = 64
MAX_NODES = 200_000


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def _problem(node: yaml.Node, file: str, message: str) -> ExperimentError:
    return ExperimentError([Problem(message, file=file, line=node.start_mark.line + 1)])


def check_node_tree(root: yaml.Node, file: str) -> None:
    """Raise ExperimentError for a recursive alias, or a tree too deep or too large once its
    aliases are expanded; run it before anything walks the expanded tree (the loader's line map,
    which also checks duplicate keys, comes next)."""
    done: dict[int, tuple[int, int]] = {}  # id(node) -> (depth, expanded size)
    in_progress: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, finished = stack.pop()
        key = id(node)
        if finished:
            children = _children(node)
            depth = 1 + max((done[id(c)][0] for c in children), default=0)
            size = 1 + sum(done[id(c)][1] for c in children)
            done[key] = (depth, size)
            in_progress.discard(key)
            if depth > MAX_DEPTH:
                raise _problem(node, file, f"expected nesting at most {MAX_DEPTH} deep, got deeper")
            if size > MAX_NODES:
                raise _problem(
                    node,
                    file,
                    f"expected at most {MAX_NODES} values once aliases are expanded, got more "
                    "(an alias bomb?)",
                )
            continue
        if key in done:
            continue
        if key in in_progress:
            raise _problem(node, file, "expected no recursive alias, got one that contains itself")
        in_progress.add(key)
        stack.append((node, True))
        stack.extend((child, False) for child in _children(node) if id(child) not in done)


def check_duplicate_keys(node: yaml.Node, file: str) -> None:
    if not isinstance(node, yaml.MappingNode):
        return
    seen: dict[str, int] = {}
    for key_node, _ in node.value:
        if not isinstance(key_node, yaml.ScalarNode) or key_node.value == "<<":
            continue
        line = key_node.start_mark.line + 1
        if key_node.value in seen:
            raise _problem(
                key_node,
                file,
                f"duplicate key {key_node.value!r} (first at line {seen[key_node.value]}, "
                f"again at line {line}); a later value would silently replace the first",
            )
        seen[key_node.value] = line


def check_data_depth(data: Any, file: str) -> None:
    """Raise ExperimentError for data nested deeper than ``MAX_DEPTH`` or holding more than
    ``MAX_NODES`` values: the same bounds as a file's, for data another parser built (a Dagster
    component's inline experiments). Iterative, so a 3,000-deep mapping cannot exhaust the stack."""
    stack: list[tuple[Any, int]] = [(data, 0)]
    seen = 0
    while stack:
        value, depth = stack.pop()
        seen += 1
        if depth >= MAX_DEPTH:
            raise ExperimentError(
                [Problem(f"expected nesting at most {MAX_DEPTH} deep, got deeper", file=file)]
            )
        if seen > MAX_NODES:
            raise ExperimentError(
                [Problem(f"expected at most {MAX_NODES} values, got more", file=file)]
            )
        if isinstance(value, dict):
            stack.extend((child, depth + 1) for child in value.values())
        elif isinstance(value, list | tuple):
            stack.extend((child, depth + 1) for child in value)
