"""The HTML report in real headless Chromium (Debian's package): it renders its tables and plots,
and a <script> from the data shows as text and never runs."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest

from crucible_dagster import run
from crucible_dagster.experiment.loading import load_experiment
from tests.conftest import ROOT
from tests.test_reports import hostile_experiment

pytestmark = [pytest.mark.slow]


BROWSER = next(
    (
        shutil.which(name)
        for name in ("chromium", "chromium-browser", "google-chrome")
        if shutil.which(name)
    ),
    None,
)
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
]


@pytest.fixture(scope="module")
def browser() -> str:
    if BROWSER is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed; .ci/run installs Debian's chromium package")
        pytest.skip("chromium is not installed")
    return BROWSER


def chromium(browser: str, *args: str) -> subprocess.CompletedProcess[str]:
    with tempfile.TemporaryDirectory() as profile:
        return subprocess.run(
            [browser, *FLAGS, f"--user-data-dir={profile}", *args],
            capture_output=True,
            text=True,
            timeout=120,
        )


def test_demo_report_renders_tables_and_plots(browser: str, tmp_path: Path) -> None:
    result = run(
        load_experiment(ROOT / "experiments" / "classifier_comparison.yaml"),
        run_id="shot",
        artifacts_root=str(tmp_path),
    )
    assert result.ok, result.failure
    page = tmp_path / "classifier_comparison" / "shot" / "comparison.html"
    dom = chromium(browser, "--dump-dom", page.as_uri()).stdout
    assert dom.count("<table") >= 5 and dom.count("<img") == 2 and "Decision record" in dom
    shot = tmp_path / "shot.png"
    chromium(browser, "--window-size=1200,3600", f"--screenshot={shot}", page.as_uri())
    from PIL import Image

    pixels = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    assert pixels.shape[:2] == (3600, 1200)
    assert pixels.std() > 10  # not a blank page
    # the plots draw their points in #1d4ed8; only rendered SVG images put that colour on screen
    blue = np.all(np.abs(pixels - np.array([0x1D, 0x4E, 0xD8])) < 40, axis=-1)
    assert blue.sum() > 200


def test_script_from_data_shows_as_text_and_never_runs(browser: str, tmp_path: Path) -> None:
    result = run(hostile_experiment(), run_id="r", artifacts_root=str(tmp_path))
    assert result.ok, result.failure
    page = tmp_path / "hostile" / "r" / "r.html"
    dom = chromium(browser, "--dump-dom", page.as_uri()).stdout
    assert (
        "data-pwned" not in dom.split("<body", 1)[1].split(">", 1)[0]
    )  # the body attribute was never set
    assert "<title>pwned</title>" not in dom
    assert (
        dom.count("&lt;script&gt;document.title='pwned'") >= 3
    )  # description, metric name, output value: as text
    assert "<script" not in dom.lower()
