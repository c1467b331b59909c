"""Family 1: hostile experiment files. Each gets one located problem, exit 1, no traceback."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.hostile.conftest import Cli

GOOD_TAIL = "pipeline: [{name: validate}]\n"
BOMB = "id: bomb\n" + "".join(
    f"{b}: &{b} [{', '.join(['*' + a] * 9)}]\n" for a, b in zip("abcdefgh", "bcdefghi", strict=True)
)
BOMB = "id: bomb\na: &a [x, x, x, x, x, x, x, x, x]\n" + BOMB.split("\n", 1)[1] + GOOD_TAIL

# (case id, file name, file text, phrase the message must contain)
YAML_CASES = [
    ("syntax_unclosed_flow", "e.yaml", "id: [unclosed\n" + GOOD_TAIL, "invalid YAML"),
    ("syntax_tab", "e.yaml", "id: a\n\tpipeline: []\n", "invalid YAML"),
    ("syntax_bad_indent", "e.yaml", "id: a\n  pipeline:\n - x\n", "invalid YAML"),
    ("syntax_unclosed_quote", "e.yaml", 'id: "a\n' + GOOD_TAIL, "invalid YAML"),
    ("two_documents", "e.yaml", "id: a\n---\nid: b\n", "invalid YAML"),
    ("alias_bomb", "e.yaml", BOMB, "alias bomb"),
    ("recursive_alias", "e.yaml", "id: r\nx: &x [*x]\n" + GOOD_TAIL, "recursive alias"),
    ("undefined_alias", "e.yaml", "id: r\nx: *nope\n" + GOOD_TAIL, "invalid YAML"),
    ("deep_flow", "e.yaml", "id: d\nx: " + "[" * 200 + "]" * 200 + "\n" + GOOD_TAIL, "nesting"),
    (
        "deep_block",
        "e.yaml",
        "id: d\n" + "".join("  " * i + f"k{i}:\n" for i in range(80)) + "  " * 80 + "v: 1\n",
        "nesting",
    ),
    ("duplicate_top_key", "e.yaml", "id: a\nid: b\n" + GOOD_TAIL, "duplicate key 'id'"),
    (
        "duplicate_nested_key",
        "e.yaml",
        "id: a\npipeline:\n  - name: validate\n    name: report\n",
        "duplicate key 'name'",
    ),
    (
        "duplicate_option_key",
        "e.yaml",
        "id: a\npipeline:\n  - name: validate\n    options: {strict: true, strict: false}\n",
        "duplicate key 'strict'",
    ),
    ("set_tag", "e.yaml", "id: s\nx: !!set {a, b}\n" + GOOD_TAIL, "tag:yaml.org,2002:set"),
    ("omap_tag", "e.yaml", "id: s\nx: !!omap [{a: 1}]\n" + GOOD_TAIL, "tag:yaml.org,2002:omap"),
    ("pairs_tag", "e.yaml", "id: s\nx: !!pairs [{a: 1}]\n" + GOOD_TAIL, "tag:yaml.org,2002:pairs"),
    (
        "python_object_apply",
        "e.yaml",
        "id: s\nx: !!python/object/apply:os.system [echo hi]\n" + GOOD_TAIL,
        "python/object/apply",
    ),
    ("python_name", "e.yaml", "id: s\nx: !!python/name:os.system\n" + GOOD_TAIL, "python/name"),
    ("python_module", "e.yaml", "id: s\nx: !!python/module:os\n" + GOOD_TAIL, "python/module"),
    ("custom_tag", "e.yaml", "id: s\nx: !evil 1\n" + GOOD_TAIL, "!evil"),
    (
        "bad_timestamp",
        "e.yaml",
        "id: t\ncreated_at: 2024-13-45\n" + GOOD_TAIL,
        ":2: created_at: expected a date, got '2024-13-45' (month must be in 1..12)",
    ),
    (
        "bad_int_tag",
        "e.yaml",
        "id: t\nseed: !!int abc\n" + GOOD_TAIL,
        ":2: seed: expected an integer",
    ),
    (
        "bad_float_tag",
        "e.yaml",
        "id: t\nseed: !!float abc\n" + GOOD_TAIL,
        ":2: seed: expected a number",
    ),
    ("empty_file", "e.yaml", "", "empty file"),
    ("only_comments", "e.yaml", "# nothing here\n", "empty file"),
    ("top_level_list", "e.yaml", "- id: a\n", "expected a mapping"),
    ("top_level_scalar", "e.yaml", "just a string\n", "expected a mapping"),
    ("non_utf8", "e.yaml", b"id: \xff\xfe\n".decode("latin-1"), "expected UTF-8"),
    (
        "seed_negative",
        "e.yaml",
        "id: s\nseed: -1\n" + GOOD_TAIL,
        "seed: expected an integer between 0 and 4294967295",
    ),
    ("seed_too_large", "e.yaml", "id: s\nseed: 4294967296\n" + GOOD_TAIL, "4294967295"),
    ("seed_huge", "e.yaml", "id: s\nseed: " + "9" * 400 + "\n" + GOOD_TAIL, "seed"),
    ("seeds_item_negative", "e.yaml", "id: s\nseeds: [1, -2]\n" + GOOD_TAIL, "seeds[1]"),
    ("seed_float", "e.yaml", "id: s\nseed: 1.5\n" + GOOD_TAIL, "seed"),
    ("id_too_long", "e.yaml", "id: " + "a" * 65 + "\n" + GOOD_TAIL, "at most 64 characters"),
    ("id_dunder_prefix", "e.yaml", "id: __ASSET_JOB\n" + GOOD_TAIL, "Dagster reserves"),
    ("id_double_underscore", "e.yaml", "id: x__a\n" + GOOD_TAIL, "without '__'"),
    ("id_newline", "e.yaml", 'id: "a\\n"\n' + GOOD_TAIL, "valid Dagster name"),
    ("id_unicode", "e.yaml", "id: café\n" + GOOD_TAIL, "valid Dagster name"),
    ("id_slash", "e.yaml", "id: ../etc\n" + GOOD_TAIL, "valid Dagster name"),
    ("id_not_string", "e.yaml", "id: [1]\n" + GOOD_TAIL, "id"),
    (
        "stage_name_dunder",
        "e.yaml",
        "id: a\npipeline: [{name: a__b, module: validate}]\n",
        "without '__'",
    ),
    (
        "parameter_name_dunder",
        "e.yaml",
        "id: a\nparameters: {a__b: [1]}\n" + GOOD_TAIL,
        "without '__'",
    ),
    (
        "parameter_duplicate_values",
        "e.yaml",
        "id: a\nparameters: {lr: [0.1, 0.10]}\n" + GOOD_TAIL,
        "distinct values",
    ),
    (
        "output_named_manifest",
        "e.yaml",
        "id: a\noutputs: [{name: manifest, formats: [json]}]\n" + GOOD_TAIL,
        "overwrite the run's own record",
    ),
    (
        "output_named_trace",
        "e.yaml",
        "id: a\noutputs: [{name: trace, formats: [json]}]\n" + GOOD_TAIL,
        "overwrite the run's own record",
    ),
    (
        "output_path_telemetry",
        "e.yaml",
        "id: a\noutputs: [{name: r, formats: [markdown], options: {path: telemetry.jsonl}}]\n"
        + GOOD_TAIL,
        "overwrite the run's own record",
    ),
    (
        "duplicate_outputs",
        "e.yaml",
        "id: a\noutputs: [{name: r}, {name: r}]\n" + GOOD_TAIL,
        "duplicate output name",
    ),
    (
        "outputs_same_file",
        "e.yaml",
        "id: a\noutputs: [{name: r}, {name: s, options: {path: r.md}}]\n" + GOOD_TAIL,
        "would overwrite report 'r'",
    ),
    ("json_syntax", "e.json", '{"id": "a",', "invalid JSON"),
    (
        "json_duplicate_key",
        "e.json",
        '{"id": "a",\n "pipeline": [{"name": "validate"}],\n "id": "b"}',
        "duplicate key 'id'",
    ),
    (
        "json_deep",
        "e.json",
        '{"id": "a", "x": ' + "[" * 3000 + "]" * 3000 + ', "pipeline": [{"name": "validate"}]}',
        "too deeply nested",
    ),
    (
        "json_nan_seed",
        "e.json",
        '{"id": "a", "seed": NaN, "pipeline": [{"name": "validate"}]}',
        "seed",
    ),
    ("json_top_list", "e.json", "[]", "expected a mapping"),
]


@pytest.mark.parametrize(
    ("name", "text", "phrase"), [c[1:] for c in YAML_CASES], ids=[c[0] for c in YAML_CASES]
)
def test_hostile_file_is_one_located_problem(
    cli: Cli, tmp_path: Path, name: str, text: str, phrase: str
) -> None:
    path = tmp_path / name
    path.write_bytes(text.encode("latin-1") if "expected UTF-8" in phrase else text.encode())
    said = cli("validate", path)  # a file that expands without end trips --timeout, not a clock
    assert said.code == 1, said.text
    assert str(path) in said.out or name in said.out, said.text
    assert phrase in said.out, said.out


def test_a_json_number_too_long_is_located(cli: Cli, tmp_path: Path) -> None:
    path = tmp_path / "big.json"
    path.write_text(
        '{"id": "big",\n "pipeline": [{"name": "validate"}],\n "seed": 1' + "0" * 5000 + "}"
    )
    said = cli("validate", path)
    assert said.code == 1
    assert said.out.startswith(f"{path}:3: seed: expected an integer of at most 4300 digits")


def test_alias_bomb_is_refused_without_expanding(cli: Cli, tmp_path: Path) -> None:
    import resource

    path = tmp_path / "bomb.yaml"
    path.write_text(BOMB)
    assert len(BOMB) < 600
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    said = cli("validate", path)
    assert said.code == 1 and "alias bomb" in said.out
    grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert grown_kib < 50_000, f"peak memory grew by {grown_kib} KiB"


def test_file_larger_than_the_limit(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "big.yaml"
    path.write_text("id: big\n" + "# padding\n" * 200_000 + GOOD_TAIL)
    said = cli("validate", path)
    assert said.code == 1 and "at most 1048576 bytes" in said.out
    monkeypatch.setenv("CRUCIBLE_MAX_FILE_BYTES", str(4 << 20))
    assert cli("validate", path).code == 0


@pytest.mark.parametrize("kind", ["fifo", "device", "directory_named_yaml"])
def test_only_regular_files_are_read(cli: Cli, tmp_path: Path, kind: str) -> None:
    if kind == "fifo":
        path = tmp_path / "pipe.yaml"
        os.mkfifo(path)
        said = cli("validate", path)  # reading a FIFO would block forever
        assert said.code == 1 and "expected a regular file" in said.out
    elif kind == "device":
        said = cli("validate", "/dev/zero")
        assert said.code == 1 and "expected a regular file" in said.out
    else:
        (tmp_path / "dir.yaml").mkdir()
        said = cli("validate", tmp_path / "dir.yaml")
        assert said.code == 1 and "expected a regular file, got a directory" in said.out


def test_a_fifo_or_socket_in_a_folder_is_named_not_skipped(cli: Cli, tmp_path: Path) -> None:
    """A folder listing once skipped what is not a regular file without a word: a strict CI
    check passed while that file never loaded."""
    import socket

    os.mkfifo(tmp_path / "pipe.yaml")
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(tmp_path / "sock.yaml"))
    (tmp_path / "link.yaml").symlink_to(tmp_path / "pipe.yaml")
    (tmp_path / "good.yaml").write_text("id: good\n" + GOOD_TAIL)
    try:
        said = cli("validate", tmp_path)
    finally:
        server.close()
    assert said.code == 1 and "1 valid" in said.err
    for name in ("pipe.yaml", "sock.yaml", "link.yaml"):
        (line,) = [x for x in said.out.splitlines() if f"{name}" in x]
        assert "expected a regular file" in line or "symlink" in line, line


def test_one_broken_file_never_stops_the_others(cli: Cli, tmp_path: Path) -> None:
    for name, text in YAML_CASES_BY_NAME.items():
        (tmp_path / f"{name}.yaml").write_text(text)
    (tmp_path / "good.yaml").write_text("id: good\n" + GOOD_TAIL)
    said = cli("validate", tmp_path)
    assert said.code == 1
    assert "1 valid" in said.err
    for name in YAML_CASES_BY_NAME:
        assert f"{name}.yaml" in said.out


YAML_CASES_BY_NAME = {c[0]: c[2] for c in YAML_CASES if c[1] == "e.yaml" and "UTF-8" not in c[3]}


def test_collisions_across_files_are_reported_per_file(cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("id: same\n" + GOOD_TAIL)
    (tmp_path / "b.json").write_text(json.dumps({"id": "same", "pipeline": [{"name": "validate"}]}))
    (tmp_path / "c.yaml").write_text("id: other\n" + GOOD_TAIL)
    said = cli("validate", tmp_path)
    # the first file (path order) keeps the id; the later one is the problem, naming it
    assert said.code == 1 and "2 valid, 1 invalid" in said.err
    assert not [line for line in said.out.splitlines() if line.startswith(str(tmp_path / "a.yaml"))]
    assert f"b.json:1: id: experiment id 'same' is already used by {tmp_path / 'a.yaml'}:1" in (
        said.out
    )


def _invalid_assets(defs: object) -> dict[str, str]:
    import dagster as dg

    from crucible_dagster.dagster_plugin.definitions import INVALID_GROUP

    assert isinstance(defs, dg.Definitions)
    return {
        Path(str(a.metadata["file"])).name: a.description or ""
        for a in defs.assets or []
        if isinstance(a, dg.AssetSpec) and a.group_name == INVALID_GROUP
    }


@pytest.mark.integration  # builds the folder's Dagster definitions
def test_an_experiment_dagster_refuses_is_its_own_invalid_asset(tmp_path: Path) -> None:
    """Attack A1: a file the IR accepts but Dagster refuses when the folder's definitions are
    put together (here its report asset is also the dataset asset it depends on, and an id
    that is also the accept job's name) never takes the folder down: Dagster loads the
    definitions, the other experiments are jobs, and each refused file is an invalid asset
    naming Dagster's reason."""
    import dagster as dg

    from crucible_dagster.dagster_plugin import definitions_from_folder

    (tmp_path / "good.yaml").write_text("id: good\n" + GOOD_TAIL)
    (tmp_path / "loop.yaml").write_text(
        "id: datasets\ndataset: {name: iris}\npipeline: [{name: report}]\noutputs: [{name: iris}]\n"
    )
    (tmp_path / "a_gated.yaml").write_text(
        "id: gated\nbaseline: {metric: 'scores:accuracy'}\npipeline: [{name: report}]\n"
        "outputs: [{name: o}]\n"
    )
    (tmp_path / "b_job.yaml").write_text("id: crucible_accept_baseline\n" + GOOD_TAIL)
    defs = definitions_from_folder(tmp_path)
    dg.Definitions.validate_loadable(defs)  # what a code server does: it used to raise
    jobs = {job.name for job in defs.get_repository_def().get_all_jobs()}
    assert {"good", "gated"} <= jobs
    invalid = _invalid_assets(defs)
    assert set(invalid) == {"loop.yaml", "b_job.yaml"}
    assert (
        "cannot compile into Dagster definitions: DagsterInvalidDefinitionError"
        in (invalid["loop.yaml"])
    )
    assert "depends on itself" in invalid["loop.yaml"]
    assert "'crucible_accept_baseline'" in invalid["b_job.yaml"]
    assert "Traceback" not in "".join(invalid.values())


@pytest.mark.integration  # builds the folder's Dagster definitions
def test_a_report_asset_dagster_refuses_fails_only_its_experiment(tmp_path: Path) -> None:
    """The reports of a whole folder are one multi-asset: a report whose Dagster name is
    invalid (here a translator's key with a space) used to fail building it, and with it
    every experiment; now that experiment alone is an invalid asset."""
    import dagster as dg

    from crucible_dagster.dagster_plugin import CrucibleTranslator, definitions_from_folder

    class Spaced(CrucibleTranslator):
        def get_asset_spec(self, experiment, output):
            spec = super().get_asset_spec(experiment, output)
            if experiment.id != "spaced":
                return spec
            return spec.replace_attributes(key=dg.AssetKey(["crucible", "spaced", "a b"]))

    report = "pipeline: [{name: report}]\noutputs: [{name: o}]\n"
    (tmp_path / "good.yaml").write_text("id: good\n" + report)
    (tmp_path / "spaced.yaml").write_text("id: spaced\n" + report)
    defs = definitions_from_folder(tmp_path, translator=Spaced())
    dg.Definitions.validate_loadable(defs)
    assert defs.resolve_job_def("good")
    assert defs.resolve_assets_def(dg.AssetKey(["crucible", "good", "o"]))
    invalid = _invalid_assets(defs)
    assert list(invalid) == ["spaced.yaml"]
    assert "is not a valid name in Dagster" in invalid["spaced.yaml"]


@pytest.mark.integration  # builds the folder's Dagster definitions
def test_a_symlink_out_of_the_experiments_folder_is_refused_unread(
    cli: Cli, tmp_path: Path
) -> None:
    """Attack A5: a link to a file elsewhere (a secret, /etc/passwd) is one line naming the
    link, under validate, the loader and run; the target's text is never echoed. A link to a
    file inside the folder is followed."""
    from crucible_dagster.dagster_plugin import definitions_from_folder

    secret = tmp_path / "secret.yaml"
    secret.write_text("id: stolen_TOKEN_abc123!\n")
    folder = tmp_path / "experiments"
    folder.mkdir()
    (folder / "good.yaml").write_text("id: good\n" + GOOD_TAIL)
    (folder / "alias.yaml").symlink_to("good.yaml")  # inside: followed (and a duplicate id)
    (folder / "out.yaml").symlink_to(secret)
    (folder / "passwd.yaml").symlink_to("/etc/passwd")
    refusal = "got a symlink leading outside it; it was not read"

    said = cli("validate", folder)
    assert said.code == 1 and "Traceback" not in said.text
    for name in ("out.yaml", "passwd.yaml"):
        (line,) = [out for out in said.out.splitlines() if out.startswith(f"{folder / name}:")]
        assert refusal in line, line
    assert "is already used by" in said.out  # alias.yaml was read: it is good.yaml's text
    assert "stolen" not in said.text and "root:x:" not in said.text

    invalid = _invalid_assets(definitions_from_folder(folder))
    assert refusal in invalid["out.yaml"] and refusal in invalid["passwd.yaml"]
    assert "stolen" not in "".join(invalid.values())

    ran = cli("run", folder / "out.yaml")
    assert ran.code == 1 and refusal in ran.err and "stolen" not in ran.text
    (folder / "alias.yaml").unlink()
    assert cli("validate", folder / "good.yaml").code == 0
