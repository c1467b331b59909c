"""Families 2 and 3: code named in experiment files, and where runs write."""

from __future__ import annotations

import json
import os
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.hostile.conftest import Cli, snapshot

HERE = "tests.hostile"

# (case id, pipeline entry, phrase the message must contain)
CODE_CASES = [
    (
        "module_exits_at_import",
        {"name": "s", "module": f"{HERE}.exits_at_import:Stage"},
        "SystemExit",
    ),
    (
        "module_interrupts_at_import",
        {"name": "s", "module": f"{HERE}.interrupts_at_import:Stage"},
        "KeyboardInterrupt",
    ),
    (
        "module_fails_at_import",
        {"name": "s", "module": f"{HERE}.fails_at_import:Stage"},
        "broken module",
    ),
    ("module_missing", {"name": "s", "module": f"{HERE}.nowhere:Stage"}, "cannot find module"),
    (
        "attribute_missing",
        {"name": "s", "module": f"{HERE}.hostile_modules:Nothing"},
        "has no stage class",
    ),
    (
        "not_a_stage_function",
        {"name": "s", "module": "os:system"},
        "names the standard library",
    ),
    (
        "not_a_stage_builtin",
        {"name": "s", "module": "builtins:eval"},
        "names the standard library",
    ),
    (
        "not_a_stage_class",
        {"name": "s", "module": f"{HERE}.hostile_modules:ScanlessAdapter"},
        "not a crucible_dagster Stage subclass",
    ),
    (
        "private_attribute",
        {"name": "s", "module": f"{HERE}.hostile_modules:__loader__"},
        "private attribute",
    ),
    (
        "options_not_pydantic",
        {"name": "s", "module": f"{HERE}.hostile_modules:NotPydanticOptions"},
        "Options must be a pydantic model",
    ),
    ("path_syntax", {"name": "s", "module": "os.system()"}, "not registered"),
    ("path_traversal_module", {"name": "s", "module": "../../etc:passwd"}, "is not a dotted path"),
]


def _file(tmp_path: Path, pipeline: list[dict[str, object]], **extra: object) -> Path:
    path = tmp_path / "exp.yaml"
    path.write_text(json.dumps({"id": "hostile", "pipeline": pipeline, **extra}))
    return path


@pytest.mark.parametrize(
    ("entry", "phrase"), [c[1:] for c in CODE_CASES], ids=[c[0] for c in CODE_CASES]
)
def test_named_code_is_a_problem_of_that_stage(
    cli: Cli, tmp_path: Path, entry: dict[str, object], phrase: str
) -> None:
    path = _file(tmp_path, [entry])
    said = cli("validate", path)
    assert said.code == 1, said.text
    assert "pipeline[0].module" in said.out and phrase in said.out, said.out
    said = cli("run", path)  # never a success, never an exit of the caller
    assert said.code == 1 and phrase in said.err, said.text


# (case id, stage options, phrase)
ADAPTER_CASES = [
    ("adapter_function", {"adapter": "os:system"}, "not a class with a scan"),
    (
        "adapter_scanless_class",
        {"adapter": f"{HERE}.hostile_modules:ScanlessAdapter"},
        "class without a scan method",
    ),
    ("adapter_unknown_builtin", {"adapter": "telepathy"}, "unknown guardrail adapter"),
]
CHECKER_CASES = [
    (
        "checker_wrong_arity",
        {"checker": f"{HERE}.hostile_modules:checker_of_three"},
        "a function of 3 argument(s)",
    ),
    (
        "checker_class",
        {"checker": f"{HERE}.hostile_modules:ScanlessAdapter"},
        "not a function checker",
    ),
    ("checker_system", {"checker": "os:system"}, "names the standard library"),
]


@pytest.mark.parametrize(
    ("stage", "options", "phrase"),
    [("guardrails", *c[1:]) for c in ADAPTER_CASES]
    + [("data_checks", *c[1:]) for c in CHECKER_CASES],
    ids=[c[0] for c in ADAPTER_CASES + CHECKER_CASES],
)
def test_adapters_and_checkers_are_checked_before_use(
    cli: Cli, tmp_path: Path, stage: str, options: dict[str, object], phrase: str
) -> None:
    seed: dict[str, object] = {
        "name": "seed",
        "module": "crucible_dagster.contrib.examples:SeedExamples",
    }
    path = _file(tmp_path, [seed, {"name": stage, "options": options}])
    said = cli("run", path)
    assert said.code == 1 and phrase in said.err, said.text


def test_printing_modules_never_corrupt_json_output(cli: Cli, tmp_path: Path) -> None:
    path = _file(tmp_path, [{"name": "chatty", "module": f"{HERE}.prints_at_import:Chatty"}])
    said = cli("run", path, "--json")
    assert said.code == 0, said.text
    assert json.loads(said.out) == {"chatty": 1}


def test_a_stage_in_the_working_directory_resolves(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "my_local_stages.py").write_text(
        "from crucible_dagster import Stage\n\nclass Local(Stage):\n"
        "    def run(self, ctx, options):\n        return ctx.put_metric('local', True)\n"
    )
    path = _file(tmp_path, [{"name": "local", "module": "my_local_stages:Local"}])
    monkeypatch.chdir(tmp_path)
    assert cli("validate", path).code == 0
    assert cli("run", path).code == 0


RUN_IDS = ["../x", "/abs", "a/b", ".", "..", "", "a..b", ".hidden", "x" * 200, "a b", "a\nb"]


@pytest.mark.parametrize("run_id", RUN_IDS, ids=[f"run_id_{i}" for i in range(len(RUN_IDS))])
def test_bad_run_ids_are_refused(
    cli: Cli, tmp_path: Path, artifacts_dir: Path, run_id: str
) -> None:
    path = _file(tmp_path, [{"name": "validate"}])
    said = cli("run", path, "--run-id", run_id)
    assert said.code == 2 and "--run-id" in said.err, said.text
    assert not artifacts_dir.exists() or not any(artifacts_dir.rglob("manifest.json"))


def test_a_reused_run_id_is_refused_and_the_earlier_run_stays_identical(
    cli: Cli, tmp_path: Path, artifacts_dir: Path
) -> None:
    path = _file(tmp_path, [{"name": "validate"}], outputs=[{"name": "r", "formats": ["json"]}])
    assert cli("run", path, "--run-id", "once").code == 0
    before = snapshot(artifacts_dir)
    said = cli("run", path, "--run-id", "once")
    assert said.code == 1 and "already exists" in said.err, said.text
    assert snapshot(artifacts_dir) == before


def test_a_symlink_planted_for_the_copies_is_never_followed(cli: Cli, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    output_dir = tmp_path / "out"
    output_dir.mkdir()
    (output_dir / "sym").symlink_to(outside)
    path = _file(
        tmp_path,
        [{"name": "report"}],
        output_dir=str(output_dir),
        outputs=[{"name": "r", "formats": ["json"]}],
    )
    said = cli("run", path, "--run-id", "sym")
    assert said.code == 1 and "already exists" in said.err, said.text
    assert not list(outside.iterdir()), "nothing may be written through the link"


def test_output_dir_gets_a_new_folder_per_run_and_nothing_is_overwritten(
    cli: Cli, tmp_path: Path
) -> None:
    output_dir = tmp_path / "out"
    output_dir.mkdir()
    (output_dir / "r.json").write_text("mine")
    path = _file(
        tmp_path,
        [{"name": "report"}],
        output_dir=str(output_dir),
        outputs=[{"name": "r", "formats": ["json", "markdown"]}],
    )
    assert cli("run", path, "--run-id", "one").code == 0
    assert cli("run", path, "--run-id", "two").code == 0
    assert (output_dir / "r.json").read_text() == "mine"
    for run_id in ("one", "two"):
        assert sorted(p.name for p in (output_dir / run_id).iterdir()) == ["r.json", "r.md"]


@pytest.mark.parametrize("escape", ["../../escape.md", "/tmp/escape_abs.md"])
def test_report_paths_cannot_escape(cli: Cli, tmp_path: Path, escape: str) -> None:
    path = _file(
        tmp_path,
        [{"name": "report"}],
        outputs=[{"name": "r", "formats": ["markdown"], "options": {"path": escape}}],
    )
    said = cli("run", path)
    assert said.code == 1 and "escapes" in said.err, said.text
    assert not (tmp_path.parent / "escape.md").exists()


def test_artifacts_root_that_is_a_file(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "root_is_a_file"
    root.write_text("I am a file")
    monkeypatch.setenv("CRUCIBLE_ARTIFACTS_DIR", str(root))
    said = cli("run", _file(tmp_path, [{"name": "validate"}]))
    assert said.code == 1 and said.err.count("\n") == 1, said.text
    assert root.read_text() == "I am a file"


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A 64 KiB tmpfs, nearly full: the disk-full case for real."""
    mount = tmp_path / "tiny"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)], capture_output=True
    )
    if done.returncode != 0:
        if os.environ.get("CI"):
            pytest.fail(f"cannot mount a tmpfs under CI: {done.stderr!r}")
        pytest.skip("mounting a tmpfs needs root")
    try:
        (mount / "filler").write_bytes(b"x" * (60 * 1024))
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=False)


def test_full_disk_is_one_line_and_nothing_looks_complete(
    cli: Cli, tmp_path: Path, tiny_disk: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CRUCIBLE_ARTIFACTS_DIR", str(tiny_disk / "artifacts"))
    seed: dict[str, object] = {
        "name": "seed",
        "module": "crucible_dagster.contrib.examples:SeedMetrics",
        "options": {"metrics": {f"m{i}": list(range(50)) for i in range(40)}},
    }
    path = _file(
        tmp_path, [seed, {"name": "report"}], outputs=[{"name": "r", "formats": ["html", "json"]}]
    )
    said = cli("run", path)
    assert said.code == 1 and "No space left on device" in said.err, said.text
    assert said.err.strip().count("\n") <= 1
    for written in (tiny_disk / "artifacts").rglob("*.json"):
        json.loads(written.read_text())  # whatever exists under its final name is whole
    assert not list((tiny_disk / "artifacts").rglob("*.tmp")), "no temporary file is left behind"


def test_files_get_the_process_umask(cli: Cli, tmp_path: Path, artifacts_dir: Path) -> None:
    path = _file(tmp_path, [{"name": "report"}], outputs=[{"name": "r", "formats": ["json"]}])
    assert cli("run", path, "--run-id", "perm").code == 0
    modes = {
        p.name: stat.S_IMODE(p.stat().st_mode)
        for p in (artifacts_dir / "hostile" / "perm").iterdir()
    }
    assert len(set(modes.values())) == 1, modes
    umask = os.umask(0)
    os.umask(umask)
    assert modes["manifest.json"] == 0o666 & ~umask
