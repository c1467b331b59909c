"""The Dagster previews' plots (issue 26, item 3): inline as data-URI images, never a path,
within a size cap; the files they come from treated as files from outside."""

from __future__ import annotations

import base64
import os
import re
from pathlib import Path
from xml.etree import ElementTree

import pytest

from crucible_dagster import Context
from crucible_dagster.dagster_plugin import previews
from crucible_dagster.dagster_plugin.previews import (
    MAX_PLOTS,
    MAX_TEXT,
    report_preview,
    sweep_preview,
)
from crucible_dagster.reports.markdown import plots_markdown
from crucible_dagster.reports.model import svg_data_uri
from crucible_dagster.reports.plots import distribution_plot

IMAGE = re.compile(r"!\[(?P<name>[^\]]*)\]\((?P<source>[^)]*)\)")


def _svg(label: str, padding: int = 0) -> str:
    """A small SVG a browser can draw; ``padding`` bytes of path data make it larger."""
    path = "M 0 0 " + "L 1 1 " * (padding // 6)
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n<!DOCTYPE svg>\n'
        '<svg xmlns="http://www.w3.org/2000/svg" width="40" height="20">\n'
        f"  <metadata>made by a test</metadata>\n  <title>{label}</title>\n"
        f'  <path d="{path}" stroke="black"/>\n</svg>\n'
    )


def _decoded(source: str) -> str:
    prefix = "data:image/svg+xml;base64,"
    assert source.startswith(prefix), source[:60]
    return base64.b64decode(source[len(prefix) :]).decode("utf-8")


def _images(markdown: str) -> dict[str, str]:
    return {m["name"]: m["source"] for m in IMAGE.finditer(markdown)}


def test_a_data_uri_keeps_the_drawing_and_drops_the_prolog() -> None:
    svg = distribution_plot({"a": [0.1, 0.2, 0.3], "b": [0.4, 0.5, 0.45]})
    assert svg is not None
    decoded = _decoded(svg_data_uri(svg))
    root = ElementTree.fromstring(decoded)  # still well-formed SVG
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    assert len(root.findall(".//{http://www.w3.org/2000/svg}path")) == svg.count("<path")
    assert "<metadata>" not in decoded and "<?xml" not in decoded
    assert len(decoded) < 0.95 * len(svg)


def test_a_report_preview_shows_its_plots_inline_and_no_path(tmp_path: Path) -> None:
    (tmp_path / "forest_plot.svg").write_text(_svg("forest"))
    (tmp_path / "distributions.svg").write_text(_svg("distributions"))
    ctx = Context(experiment_id="shown", run_id="r1", run_dir=str(tmp_path))
    preview = report_preview(ctx)
    images = _images(preview)
    assert list(images) == ["distributions", "forest plot"]
    assert "<title>forest</title>" in _decoded(images["forest plot"])
    assert str(tmp_path) not in preview and ".svg" not in preview
    assert preview.startswith("# Experiment shown")
    assert preview.index("## Plots") > preview.index("- run: r1")


def test_a_sweep_preview_turns_its_plot_lines_into_images(tmp_path: Path) -> None:
    (tmp_path / "sweep_forest_plot.svg").write_text(_svg("forest"))
    markdown = tmp_path / "sweep.md"
    markdown.write_text(
        "# Sweep s\n\n## Configurations\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n"
        "![forest plot](sweep_forest_plot.svg)\n\n![gone](sweep_gone.svg)\n\n"
        "## Failed trials\n\n- t1\n"
    )
    preview = sweep_preview(markdown)
    assert list(_images(preview)) == ["forest plot"]
    assert "sweep_forest_plot.svg" not in preview and str(tmp_path) not in preview
    assert "- gone: not shown: FileNotFoundError" not in preview  # a missing file is not named
    assert "- gone: not shown" in preview
    assert "## Failed trials" in preview  # what came after the plots stays


def test_plots_over_the_cap_are_named_not_embedded_nor_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "a_small.svg").write_text(_svg("small"))
    (tmp_path / "b_huge.svg").write_text(_svg("huge", padding=3 * MAX_PLOTS))
    (tmp_path / "c_small.svg").write_text(_svg("also small"))
    read: list[str] = []
    original = Path.read_text

    def counting(self: Path, *args: object, **kwargs: object) -> str:
        read.append(self.name)
        return original(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Path, "read_text", counting)
    preview = report_preview(Context(experiment_id="e", run_id="r", run_dir=str(tmp_path)))
    assert list(_images(preview)) == ["a small", "c small"]
    assert "- b huge: not shown here \\(" in preview  # the parenthesis escaped as markdown
    assert "it is in the HTML report" in preview
    assert "b_huge.svg" not in read  # refused from its size, never read
    assert len(preview.encode()) < MAX_TEXT + MAX_PLOTS


def test_the_plots_share_one_budget(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(previews, "MAX_PLOTS", 3100)
    for name in ("a", "b", "c"):
        (tmp_path / f"{name}.svg").write_text(_svg(name, padding=1000))
    preview = report_preview(Context(experiment_id="e", run_id="r", run_dir=str(tmp_path)))
    assert list(_images(preview)) == ["a", "b"]  # 1514 bytes each as a data URI
    assert "- c: not shown here" in preview


def test_a_plot_that_is_no_regular_utf8_file_is_named_not_shown(tmp_path: Path) -> None:
    outside = tmp_path.parent / f"{tmp_path.name}_outside.svg"
    outside.write_text(_svg("outside"))
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "linked.svg").symlink_to(outside)
    (run_dir / "latin.svg").write_bytes(_svg("caf\xe9").encode("latin-1"))
    (run_dir / "folder.svg").mkdir()
    fifo = run_dir / "pipe.svg"
    os.mkfifo(fifo)
    preview = report_preview(Context(experiment_id="e", run_id="r", run_dir=str(run_dir)))
    assert _images(preview) == {}
    for name in ("linked", "latin", "folder", "pipe"):
        assert f"- {name}: not shown" in preview
    assert str(outside) not in preview and str(run_dir) not in preview


def test_a_long_preview_is_cut_at_a_line_and_says_so(tmp_path: Path) -> None:
    markdown = tmp_path / "sweep.md"
    markdown.write_text("| row | value |\n|---|---|\n" + "| x | 1 |\n" * (MAX_TEXT // 5))
    preview = sweep_preview(markdown)
    text, note = preview.split("\n\n*The preview stops here", 1)
    assert len(text) <= MAX_TEXT and text.endswith("| x | 1 |")
    assert note.startswith(f" ({MAX_TEXT} characters)")


def test_only_a_data_uri_becomes_an_image_and_names_are_escaped() -> None:
    for source in ("/tmp/run/forest_plot.svg", "javascript:alert(1)", "data:image/svg+xml,a b"):
        with pytest.raises(ValueError, match="needs a data URI"):
            plots_markdown({"forest": source})
    markdown = plots_markdown(
        {"a](javascript:x) [b": svg_data_uri(_svg("a"))}, {"<img src=x>": "too large"}
    )
    assert "](javascript:" not in markdown and "<img" not in markdown
