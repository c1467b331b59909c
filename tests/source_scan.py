"""The package's source read and parsed once per test process.

Several tests read every module with ``ast`` (the layering, the size limits, the run driver's
single home, deprecated calls); each used to parse the whole package again, about 0.6 s of CPU
a time. They share these cached trees, which no test may change.
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "crucible_dagster"


@functools.cache
def python_files(root: Path = PACKAGE) -> tuple[Path, ...]:
    """Every ``.py`` file under ``root``, sorted."""
    return tuple(sorted(root.rglob("*.py")))


@functools.cache
def source(path: Path) -> str:
    return path.read_text(encoding="utf-8")


@functools.cache
def tree(path: Path) -> ast.Module:
    """The module's syntax tree (shared: read it, never change it)."""
    return ast.parse(source(path), filename=str(path))


@functools.cache
def nodes(path: Path) -> tuple[ast.AST, ...]:
    """Every node of the module's tree, in ``ast.walk`` order."""
    return tuple(ast.walk(tree(path)))
