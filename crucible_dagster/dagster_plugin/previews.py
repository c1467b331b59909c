"""The markdown previews the UI shows on report and sweep assets, with the plots inline.

The UI cannot open a file on the machine that ran the job, so a plot is embedded as a
``data:`` URI image (Dagster's documented way to show an image in markdown metadata; its
renderer allows the ``data`` scheme for images) and never linked by path. Every
materialization's metadata is stored in the event log and sent to the browser with the asset's
events, and Dagster+ refuses oversized event payloads (HTTP 413), so a preview is capped: its
text at ``MAX_TEXT`` characters (cut at a line), its plots at ``MAX_PLOTS`` bytes together; a
plot over what is left is named with its size and left to the HTML report.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

from crucible_dagster.runtime.context import Context

#: characters of a preview's text (summary, tables, decision record)
MAX_TEXT = 20_000
#: bytes of inline plots in one preview, together (two or three matplotlib plots take 80-150 KB)
MAX_PLOTS = 256 * 1024
#: a report's plot files beside it: ``![name](file.svg)`` lines of the markdown report
_PLOT_LINE = re.compile(r"^!\[(?P<name>[^\]\n]*)\]\((?P<file>[\w.-]+\.svg)\)\s*$", re.M)


def report_preview(ctx: Context) -> str:
    """A report asset's preview: the run's summary, then the run directory's plots inline."""
    from crucible_dagster.reports.markdown import summary_markdown

    run_dir = Path(ctx.run_dir) if ctx.run_dir else None
    files = sorted(run_dir.glob("*.svg")) if run_dir is not None else []
    return _with_plots(summary_markdown(ctx), ((p.stem.replace("_", " "), p) for p in files))


def sweep_preview(markdown: Path) -> str:
    """A sweep asset's preview: its markdown report, whose plot lines (files beside it) become
    inline images at the end."""
    text = markdown.read_text(encoding="utf-8", errors="replace")
    plots = [(m["name"], markdown.parent / m["file"]) for m in _PLOT_LINE.finditer(text)]
    return _with_plots(_PLOT_LINE.sub("", text), plots)


def _with_plots(text: str, plots: Iterable[tuple[str, Path]]) -> str:
    from crucible_dagster.reports.markdown import plots_markdown
    from crucible_dagster.reports.model import svg_data_uri

    images: dict[str, str] = {}
    left_out: dict[str, str] = {}
    room = MAX_PLOTS
    for name, path in plots:
        try:
            if path.is_symlink() or not path.is_file():
                raise OSError("not a regular file")
            # a file that cannot fit however much of it is whitespace is not read at all
            if path.stat().st_size > 2 * room:
                raise _TooLarge(path.stat().st_size)
            source = svg_data_uri(path.read_text(encoding="utf-8"))
        except _TooLarge as exc:
            left_out[name] = _over_the_cap(exc.size)
            continue
        except (OSError, UnicodeDecodeError) as exc:
            left_out[name] = f"not shown: {exc.__class__.__name__}"
            continue
        if len(source) > room:
            left_out[name] = _over_the_cap(len(source))
            continue
        images[name] = source
        room -= len(source)
    return _capped(text) + "\n" + plots_markdown(images, left_out)


class _TooLarge(Exception):
    def __init__(self, size: int) -> None:
        super().__init__(size)
        self.size = size


def _over_the_cap(size: int) -> str:
    return (
        f"not shown here ({size // 1024} KiB; a preview holds {MAX_PLOTS // 1024} KiB of "
        "plots): it is in the HTML report"
    )


def _capped(text: str) -> str:
    """``text`` up to ``MAX_TEXT`` characters, cut after a whole line, saying so."""
    text = text.rstrip() + "\n"
    if len(text) <= MAX_TEXT:
        return text
    cut = text[:MAX_TEXT].rsplit("\n", 1)[0]
    return f"{cut}\n\n*The preview stops here ({MAX_TEXT} characters): the report file has the rest.*\n"
