"""Issue 22, section 7: every run record ends in a terminal status, even on a full disk.

Real tmpfs mounts, filled to several levels, with ``crucible run`` and a Dagster job writing
into them. At every level the manifest (when the run got a directory at all) parses and says
``failed`` with the reason ``ENOSPC`` (or ``completed`` when everything fitted), the command
says so in one line naming the file, and no temporary file is left behind.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from crucible_dagster.runtime.context import Context
from crucible_dagster.runtime.stage import Stage, StageOptions
from tests.hostile.conftest import Cli

MOUNT_SIZE = 512 * 1024
#: KiB left free on the mount: from nothing to room for the whole run
FREE_KIB = [*range(0, 100, 4), 160]  # every 4 KiB page boundary up to room for all


def _mount(where: Path, size: int) -> bool:
    where.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], capture_output=True
    )
    if done.returncode != 0:
        if os.environ.get("CI"):
            pytest.fail(f"cannot mount a tmpfs under CI: {done.stderr!r}")
        return False
    return True


def _fill(mount: Path, leave: int) -> None:
    """Fill ``mount`` but ``leave`` bytes."""
    stat = os.statvfs(mount)
    free = stat.f_bavail * stat.f_frsize
    (mount / "filler").write_bytes(b"x" * max(0, free - leave))


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[Path]:
    """A 512 KiB tmpfs of our own (unmounted afterwards)."""
    mount = tmp_path / "disk"
    if not _mount(mount, MOUNT_SIZE):
        pytest.skip("mounting a tmpfs needs root")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=False)


def _experiment(tmp_path: Path, pipeline: list[dict[str, Any]]) -> Path:
    path = tmp_path / "exp.yaml"
    outputs = [{"name": "r", "formats": ["html", "json", "csv", "markdown"]}]
    path.write_text(json.dumps({"id": "full", "pipeline": pipeline, "outputs": outputs}))
    return path


SEED = {
    "name": "seed",
    "module": "crucible_dagster.contrib.examples:SeedMetrics",
    "options": {"metrics": {f"m{i}": list(range(50)) for i in range(4)}},
}


def _one_line(err: str) -> str:
    """The command's one error line (the lines before it are the run's progress)."""
    errors = [line for line in err.splitlines() if line.startswith("crucible:")]
    assert len(errors) == 1 and err.strip().endswith(errors[0]), err
    return errors[0]


def _leftovers(root: Path) -> list[str]:
    return [str(p) for p in root.rglob("*") if p.name.endswith((".tmp", ".reserve"))]


def _assert_terminal(run_dir: Path) -> dict[str, Any]:
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] in {"completed", "failed"}, manifest["status"]
    if manifest["status"] == "failed":
        assert manifest["failure"]["reason"] == "ENOSPC", manifest["failure"]
    return manifest


@pytest.mark.parametrize("free_kib", FREE_KIB)
def test_crucible_run_ends_its_record_at_every_fill_level(
    cli: Cli, tmp_path: Path, disk: Path, free_kib: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CRUCIBLE_ARTIFACTS_DIR", str(disk / "artifacts"))
    path = _experiment(tmp_path, [SEED, {"name": "report"}])
    _fill(disk, free_kib * 1024)
    said = cli("run", path, "--run-id", "r1")
    run_dir = disk / "artifacts" / "full" / "r1"
    assert not _leftovers(disk), "no temporary file or reserve is left behind"
    if said.code == 0:
        assert free_kib >= 48, f"a run with {free_kib} KiB free cannot have fitted"
        assert _assert_terminal(run_dir)["status"] == "completed"
        return
    line = _one_line(said.err)
    assert said.code == 1, said.text
    assert "No space left on device" in line and str(run_dir) in line, line
    if free_kib == 0:
        # not even a failed manifest fits: no run started, and no run directory stays
        assert not run_dir.exists()
        return
    assert _assert_terminal(run_dir)["status"] == "failed"


class FillTheDiskOptions(StageOptions):
    mount: str


class FillTheDisk(Stage):
    """Another process took the last block and the reserve is gone: the worst case."""

    name = "fill_the_disk"
    Options = FillTheDiskOptions

    def run(self, ctx: Context, options: FillTheDiskOptions) -> Context:
        assert ctx.run_dir is not None
        (Path(ctx.run_dir) / ".manifest.reserve").unlink()
        fd = os.open(Path(options.mount) / "filler", os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        try:
            for chunk in (4096, 512, 1):
                try:
                    while os.write(fd, b"x" * chunk):
                        pass
                except OSError:
                    continue
        finally:
            os.close(fd)
        return ctx.merge_metrics({"big": list(range(2000))})


def test_without_room_or_reserve_the_manifest_is_rewritten_over_its_own_blocks(
    cli: Cli, tmp_path: Path, disk: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CRUCIBLE_ARTIFACTS_DIR", str(disk / "artifacts"))
    fill = {
        "name": "fill",
        "module": "tests.hostile.test_disk_full:FillTheDisk",
        "options": {"mount": str(disk)},
    }
    said = cli("run", _experiment(tmp_path, [fill]), "--run-id", "r1")
    run_dir = disk / "artifacts" / "full" / "r1"
    assert said.code == 1 and "No space left on device" in _one_line(said.err), said.text
    manifest = _assert_terminal(run_dir)
    assert manifest["status"] == "failed" and manifest["stages"]["fill"]["status"] == "completed"
    assert "metrics" in manifest["failure"]["dropped"], manifest["failure"]
    # the compact form: written over the starting manifest, not through a temporary copy
    assert "\n" not in (run_dir / "manifest.json").read_text()
    assert not _leftovers(disk)


@pytest.mark.slow
@pytest.mark.parametrize("free_kib", [8, 48, 160])
def test_a_dagster_run_ends_its_record_on_a_full_disk(
    tmp_path: Path, disk: Path, free_kib: int
) -> None:
    from crucible_dagster import Experiment
    from crucible_dagster.dagster_plugin import CrucibleResource, build_job
    from tests.dagster_helpers import ephemeral_instance

    experiment = Experiment.model_validate(
        json.loads(_experiment(tmp_path, [SEED, {"name": "report"}]).read_text())
    )
    resource = CrucibleResource(artifacts_dir=str(disk / "artifacts"))
    _fill(disk, free_kib * 1024)
    with ephemeral_instance() as instance:
        result = build_job(experiment, resource=resource).execute_in_process(
            instance=instance, raise_on_error=False
        )
    (run_dir,) = (disk / "artifacts" / "full").iterdir()
    manifest = _assert_terminal(run_dir)
    assert result.success == (manifest["status"] == "completed"), manifest
    assert not _leftovers(disk)


def test_a_rewrite_in_place_that_would_grow_is_refused_and_leaves_the_file_whole(
    disk: Path,
) -> None:
    """The last resort never tears the manifest it would replace: longer data needs new
    blocks a full disk may not have, so it is refused before the first byte is written."""
    from crucible_dagster.common.files import write_in_place

    page = 4096
    target = disk / "manifest.json"
    start = json.dumps({"status": "running"}).ljust(page)  # exactly its one block, full
    target.write_text(start)
    _fill(disk, 0)
    longer = json.dumps({"status": "failed", "note": "x" * page}).encode()
    with pytest.raises(OSError) as refused:
        write_in_place(target, longer)
    assert refused.value.errno == 28 and refused.value.filename == str(target)
    assert target.read_text() == start  # untouched, not half overwritten
    write_in_place(target, b'{"a": 1}')  # no longer than the file: fits in its own blocks
    assert json.loads(target.read_text()) == {"a": 1}
