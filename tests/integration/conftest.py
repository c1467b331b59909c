"""Everything under tests/integration executes real Dagster jobs or CLIs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.integration.cdp import browser_path, close_browsers

HERE = Path(__file__).parent


@pytest.fixture(scope="session")
def browser() -> str:
    """Debian's chromium: skipped where it is missing, unless under CI (``.ci/run`` installs it)."""
    path = browser_path()
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed; .ci/run installs Debian's chromium package")
        pytest.skip("chromium is not installed")
    return path


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.integration)


def pytest_sessionfinish() -> None:
    close_browsers()
