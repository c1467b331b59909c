"""Hostile family for a setting: what `crucible validate`, the Dagster loader and a run start
accept is the same (issue 22, section 8).

Every refused case goes through all three: `crucible validate` (exit 1, one line naming the
file, line and field), `definitions_from_folder` (no job, an invalid asset showing that same
line) and `crucible run` (exit 1 before anything runs, the same line, nothing written).
Every case builds Dagster definitions: the module is marked ``integration`` and imports Dagster
inside its tests, so ``make test-fast`` collects it without loading Dagster.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from crucible_dagster.experiment.loading import loads_experiment
from crucible_dagster.experiment.yaml_limits import MAX_DEPTH
from tests.hostile.conftest import Cli, snapshot

if TYPE_CHECKING:
    import dagster as dg

pytestmark = pytest.mark.integration

HEAD = "id: parity\npipeline:\n  - name: validate\n"  # lines 1-3: every case starts at line 4

#: (case, text after HEAD, the field refused at line 4, a phrase of the one line)
REFUSED = [
    (
        "bool_for_trials_per_step",
        "sweep: {metric: m, trials_per_step: true}\nparameters: {a: [1, 2]}\n",
        "sweep.trials_per_step",
        "expected an integer, got true (true/false is not a number)",
    ),
    ("bool_in_seeds", "seeds: [1, yes]\n", "seeds[1]", "expected an integer, got true"),
    ("bool_for_seed", "seed: on\n", "seed", "expected an integer, got true"),
    (
        "bool_in_hedging_options",
        "reliability: {hedging: {strategy: fixed, options: {min_samples: true}}}\n",
        "reliability.hedging.options.min_samples",
        "expected an integer, got true",
    ),
    (
        "unknown_hedging_option_with_a_suggestion",
        "reliability: {hedging: {strategy: fixed, options: {capcity: 4}}}\n",
        "reliability.hedging.options.capcity",
        "unknown field 'capcity'; expected one of: capacity, min_samples; did you mean 'capacity'?",
    ),
    (
        "unknown_circuit_breaker_key_with_a_suggestion",
        "reliability: {circuit_breaker: {failure_threshold: 3, windw: 10}}\n",
        "reliability.circuit_breaker.windw",
        "unknown field 'windw'; expected one of: failure_threshold, half_open_requests, "
        "reset_timeout_s, window; did you mean 'window'?",
    ),
    (
        "circuit_breaker_threshold_over_its_window",
        "reliability: {circuit_breaker: {failure_threshold: 20, window: 10}}\n",
        "reliability.circuit_breaker",
        "failure_threshold 20 is more than the window of 10 requests: the circuit could never open",
    ),
    (
        "circuit_breaker_without_a_threshold",
        "reliability: {circuit_breaker: {window: 10}}\n",
        "reliability.circuit_breaker.failure_threshold",
        "expected a value (this field is required), got nothing",
    ),
    (
        "bool_for_a_circuit_breaker_threshold",
        "reliability: {circuit_breaker: {failure_threshold: yes}}\n",
        "reliability.circuit_breaker.failure_threshold",
        "expected an integer, got true",
    ),
    (
        "circuit_breaker_reset_of_zero",
        "reliability: {circuit_breaker: {failure_threshold: 3, reset_timeout_s: 0}}\n",
        "reliability.circuit_breaker.reset_timeout_s",
        "expected a number in (0, 86400], got 0",
    ),
    (
        "circuit_breaker_without_a_backend_that_sends_requests",
        "reliability: {circuit_breaker: {failure_threshold: 3}}\n",
        "reliability.circuit_breaker",
        "set, but no stage of this pipeline uses it: add a stage that does (predict or "
        "generate, with an openai_compatible backend) or remove it",
    ),
    (
        "drift_without_a_reference",
        "reliability: {drift: {alpha: 0.01}}\n",
        "reliability.drift",
        "expected one reference: reference (a dataset) or reference_model (a registered "
        "model's version), got neither",
    ),
    (
        "unknown_drift_key_with_a_suggestion",
        "reliability: {drift: {reference: {name: iris, provider: sklearn}, alfa: 0.01}}\n",
        "reliability.drift.alfa",
        "unknown field 'alfa'; expected one of: alpha, bins, correction, current, current_from, "
        "fail_on_drift, features, kinds, psi_threshold, reference, reference_model; did you mean "
        "'alpha'?",
    ),
    (
        "drift_kind_not_known",
        "reliability: {drift: {reference: {name: iris, provider: sklearn}, kinds: {a: image}}}\n",
        "reliability.drift.kinds.a",
        "expected one of: numeric, categorical, text, got 'image'",
    ),
    (
        "drift_alpha_of_one",
        "reliability: {drift: {reference: {name: iris, provider: sklearn}, alpha: 1}}\n",
        "reliability.drift.alpha",
        "expected a number in (0, 1), got 1",
    ),
    (
        "drift_with_no_features",
        "reliability: {drift: {reference: {name: iris, provider: sklearn}, features: []}}\n",
        "reliability.drift.features",
        "expected at least 1 item(s), got []",
    ),
    (
        "drift_features_twice",
        "reliability: {drift: {reference: {name: iris, provider: sklearn}, features: [a, a]}}\n",
        "reliability.drift.features",
        "expected distinct features, got 'a' twice",
    ),
    (
        "drift_without_its_stage",
        "reliability: {drift: {reference: {name: iris, provider: sklearn}}}\n",
        "reliability.drift",
        "set, but no stage of this pipeline uses it: add a stage that does (drift) or remove it",
    ),
    (
        "feedback_without_its_stage",
        "reliability: {feedback: {source: events.jsonl}}\n",
        "reliability.feedback",
        "set, but no stage of this pipeline uses it: add a stage that does (feedback) or remove it",
    ),
    (
        "feedback_from_a_web_address",
        "reliability: {feedback: {source: 'http://169.254.169.254/latest'}}\n",
        "reliability.feedback.source",
        "found the 'http' URL 'http://169.254.169.254/latest'",
    ),
    (
        "feedback_sampling_rate_over_one",
        "reliability: {feedback: {source: e.jsonl, sampling_rate: 1.5}}\n",
        "reliability.feedback.sampling_rate",
        "sampling_rate must be between 0 and 1",
    ),
    (
        "bool_for_feedback_retention_days",
        "reliability: {feedback: {source: e.jsonl, retention_days: yes}}\n",
        "reliability.feedback.retention_days",
        "expected an integer, got true",
    ),
    (
        "unknown_feedback_key_with_a_suggestion",
        "reliability: {feedback: {source: e.jsonl, sampling_rat: 0.5}}\n",
        "reliability.feedback.sampling_rat",
        "did you mean 'sampling_rate'?",
    ),
    (
        "feedback_table_with_sql_in_its_name",
        "reliability: {feedback: {source: {table: 'events; DROP TABLE runs'}}}\n",
        "reliability.feedback.source.table",
        "expected a table name (letters, digits and '_', optionally schema.table)",
    ),
    (
        "monitoring_without_a_limit",
        "reliability: {monitoring: {window: 3}}\n",
        "reliability.monitoring",
        "expected at least one of latency_p95_ms, error_rate, cost_per_1k",
    ),
    (
        "monitoring_error_rate_over_one",
        "reliability: {monitoring: {error_rate: 1.5}}\n",
        "reliability.monitoring.error_rate",
        "got 1.5",
    ),
    (
        "bool_for_the_monitoring_window",
        "reliability: {monitoring: {error_rate: 0.1, window: yes}}\n",
        "reliability.monitoring.window",
        "expected an integer, got true",
    ),
    (
        "unknown_monitoring_key_with_a_suggestion",
        "reliability: {monitoring: {latency_p95: 200}}\n",
        "reliability.monitoring.latency_p95",
        "did you mean 'latency_p95_ms'?",
    ),
    (
        "monitoring_without_its_stage",
        "reliability: {monitoring: {error_rate: 0.1}}\n",
        "reliability.monitoring",
        "set, but no stage of this pipeline uses it: add a stage that does (monitor) or remove it",
    ),
    (
        "training_without_a_train_stage",
        "training_config: {id: t, model_ref: {id: m, architecture: SGDClassifier}, "
        "dataset_ref: {name: iris, provider: sklearn}}\n",
        "training_config",
        "no stage of this pipeline uses it: add a stage that does (train)",
    ),
    (
        "early_stopping_without_a_validation_split",
        "training_config: {id: t, model_ref: {id: m}, dataset_ref: {name: iris}, "
        "early_stopping: {patience: 2}}\n",
        "training_config",
        "set validation_split",
    ),
    (
        "deployment_alias_with_a_slash",
        "deployment: {alias: a/b}\n",
        "deployment.alias",
        "letters, digits",
    ),
    (
        "tracking_timeout_of_zero",
        "tracking: {mlflow: {timeout_s: 0}}\n",
        "tracking.mlflow.timeout_s",
        "got 0",
    ),
    (
        "drift_with_two_references",
        "reliability: {drift: {reference: {name: iris, provider: sklearn}, reference_model: {id: m}}}\n",
        "reliability.drift",
        "expected one reference",
    ),
    (
        "retraining_on_drift_without_drift",
        "reliability: {retraining_trigger: {when: [drift]}}\n",
        "reliability.retraining_trigger.when[0]",
        "'drift' is shown by reliability.drift (and its stage), which is not set",
    ),
    (
        "retraining_with_no_reason",
        "reliability: {retraining_trigger: {when: []}}\n",
        "reliability.retraining_trigger.when",
        "expected at least 1 item(s), got []",
    ),
    (
        "retraining_cooldown_of_zero",
        "reliability: {retraining_trigger: {when: [drift], cooldown_hours: 0}}\n",
        "reliability.retraining_trigger.cooldown_hours",
        "got 0",
    ),
    (
        "unknown_retraining_key_with_a_suggestion",
        "reliability: {retraining_trigger: {when: [drift], cooldown: 3}}\n",
        "reliability.retraining_trigger.cooldown",
        "did you mean 'cooldown_hours'?",
    ),
    (
        "feedback_dsn_with_a_password",
        "reliability: {feedback: {source: {table: t, dsn: 'postgresql://u:pw@h/db'}}}\n",
        "reliability.feedback.source.dsn",
        "expected a URL without a password (it would be copied into every run's manifest)",
    ),
    (
        "unknown_output_option_with_a_suggestion",
        "outputs: [{name: summary, options: {pth: summary.md}}]\n",
        "outputs[0].options.pth",
        "unknown field 'pth'; expected one of: path; did you mean 'path'?",
    ),
    (
        "hedging_option_out_of_range",
        "reliability: {hedging: {strategy: fixed, options: {capacity: 0}}}\n",
        "reliability.hedging.options.capacity",
        "expected a number > 0, got 0",
    ),
    (
        "infinite_margin",
        "baseline: {metric: 'scores:accuracy', margin: .inf}\n",
        "baseline.margin",
        "expected a finite number >= 0, got inf",
    ),
    (
        "ensemble_strategy_yes",
        "reliability: {ensemble: {strategy: yes}}\n",
        "reliability.ensemble.strategy",
        "got True (YAML reads unquoted yes, no, on and off as true or false: quote the word)",
    ),
    (
        "dataset_split_no",
        "dataset: {name: iris, split: no}\n",
        "dataset.split",
        "expected a string, got False (YAML reads unquoted yes, no, on and off as true or false",
    ),
    (
        "cron_with_seconds",
        "schedule: {cron: '0 0 3 * * *'}\n",
        "schedule.cron",
        "that Dagster accepts, got '0 0 3 * * *'",
    ),
    (
        "cron_on_30_february",
        "schedule: {cron: '0 0 30 2 *'}\n",
        "schedule.cron",
        "that Dagster accepts, got '0 0 30 2 *'",
    ),
    (
        "owner_not_an_email",
        "owner: ana@lab\n",
        "owner",
        "expected an email address such as 'ana@example.org'",
    ),
    (
        "integer_of_5000_digits",
        "seed: " + "9" * 5000 + "\n",
        "seed",
        "expected an integer of at most 4300 digits, got one of 5000 digits",
    ),
    ("impossible_date", "created_at: 2020-02-31\n", "created_at", "expected a date, got"),
    ("int_tag_on_a_word", "seed: !!int abc\n", "seed", "expected an integer, got 'abc'"),
    # attack A1: an output name becomes a Dagster name; one Dagster refuses is the IR's problem
    (
        "output_name_with_a_space",
        "outputs: [{name: 'summary v2', formats: [json]}]\n",
        "outputs[0].name",
        "expected an output name of at most 64 letters, digits, '_', '-' and '.'",
    ),
    ("output_name_with_a_slash", "outputs: [{name: 'a/b'}]\n", "outputs[0].name", "got 'a/b'"),
    (
        "output_names_one_dagster_name",
        "outputs: [{name: a_b}, {name: a-b}]\n",
        "outputs[1].name",
        "duplicate output name 'a-b' (the same Dagster name as 'a_b'",
    ),
    # attack A4: what the report stage would refuse at the end of the run
    ("output_name_going_up", "outputs: [{name: '../o'}]\n", "outputs[0].name", "got '../o'"),
    (
        "output_path_going_up",
        "outputs: [{name: o, formats: [json], options: {path: ../../x.json}}]\n",
        "outputs[0].options.path",
        "expected a file name inside the run directory, got '../../x.json'",
    ),
    (
        "output_path_absolute",
        "outputs: [{name: o, options: {path: /tmp/x.md}}]\n",
        "outputs[0].options.path",
        "got '/tmp/x.md'",
    ),
    # attack A3: a repeated seed is a trial run (or counted) twice, as a repeated grid value
    ("repeated_seed", "seeds: [1, 1]\n", "seeds[1]", "expected distinct seeds, got 1 twice"),
    # attack A11: the gate's alpha and margin are numbers
    (
        "gate_alpha_above_half",
        "baseline: {metric: 'scores:accuracy', alpha: 2}\n",
        "baseline.alpha",
        "expected a number in (0, 0.5), got 2",
    ),
    (
        "gate_margin_negative",
        "baseline: {metric: 'scores:accuracy', margin: -1}\n",
        "baseline.margin",
        "expected a number >= 0, got -1",
    ),
    # attack A12: 'stages' is another name for 'pipeline'
    (
        "stages_and_pipeline",
        "stages:\n  - name: validate\n",
        "stages",
        "both 'stages' and 'pipeline' were given",
    ),
    # attack A13: bools, integers and formats strict
    ("enabled_text_no", "    enabled: 'no'\n", "pipeline[0].enabled", "true or false, got 'no'"),
    ("enabled_zero", "    enabled: 0\n", "pipeline[0].enabled", "expected true or false, got 0"),
    ("seed_as_text", "seed: '3'\n", "seed", "expected an integer, got '3'"),
    ("seed_whole_float", "seed: 2.0\n", "seed", "expected an integer, got 2.0"),
    (
        "format_twice",
        "outputs: [{name: o, formats: [json, json]}]\n",
        "outputs[0].formats",
        "expected distinct formats, got 'json' twice",
    ),
]

CV = "crucible_dagster.contrib.classifiers:CrossValidate"
#: (case, a whole file, the field refused at line 4, a phrase of the one line)
REFUSED_FILES = [
    (
        "fail_fast_text_yes",
        "id: parity\npipeline:\n  - name: data_checks\n    options: {fail_fast: 'yes'}\n",
        "pipeline[0].options.fail_fast",
        "expected true or false, got 'yes'",
    ),
    (
        "fail_fast_one",
        "id: parity\npipeline:\n  - name: data_checks\n    options: {fail_fast: 1}\n",
        "pipeline[0].options.fail_fast",
        "expected true or false, got 1",
    ),
    (
        "folds_as_text",
        f"id: parity\npipeline:\n  - name: cv\n    options: {{folds: '3'}}\n    module: {CV}\n",
        "pipeline[0].options.folds",
        "expected an integer, got '3'",
    ),
    (
        "folds_whole_float",
        f"id: parity\npipeline:\n  - name: cv\n    options: {{folds: 2.0}}\n    module: {CV}\n",
        "pipeline[0].options.folds",
        "expected an integer, got 2.0",
    ),
    (
        "stats_alpha_one",
        "id: parity\npipeline:\n  - name: bench\nreliability: {stats: {alpha: 1}}\n",
        "reliability.stats.alpha",
        "expected a number in (0, 1), got 1",
    ),
]


def _definitions(folder: Path) -> dg.Definitions:
    from crucible_dagster.dagster_plugin import definitions_from_folder

    return definitions_from_folder(folder)


def _one_line(text: str, path: Path, line: int, field: str, phrase: str) -> str:
    lines = [out for out in text.splitlines() if out.startswith(f"{path}:")]
    assert len(lines) == 1, text
    assert lines[0].startswith(f"{path}:{line}: {field}: "), lines[0]
    assert phrase in lines[0], lines[0]
    return lines[0]


def _refused_everywhere(
    cli: Cli, tmp_path: Path, name: str, text: str, line: int, field: str, phrase: str
) -> None:
    """The one line of `crucible validate` is the Dagster loader's problem and the run's refusal;
    the run starts no stage and writes nothing. Run from ``tmp_path`` (monkeypatch.chdir)."""
    folder = tmp_path / "experiments"
    folder.mkdir()
    path = folder / f"{name}.yaml"
    path.write_text(text)
    path = path.relative_to(tmp_path)
    before = snapshot(tmp_path)

    validated = cli("validate", path)
    assert validated.code == 1
    problem = _one_line(validated.out, path, line, field, phrase)

    import dagster as dg

    from crucible_dagster.dagster_plugin.definitions import INVALID_GROUP

    defs = _definitions(folder)
    assert not any(job.name == "parity" for job in defs.jobs)
    invalid = [a for a in defs.assets if isinstance(a, dg.AssetSpec)]
    assert [a.group_name for a in invalid] == [INVALID_GROUP]
    assert problem in (invalid[0].description or "")

    ran = cli("run", path)
    assert ran.code == 1
    assert problem in ran.err.splitlines()
    assert "[1/" not in ran.err  # no stage started
    assert snapshot(tmp_path) == before  # no run directory, nothing changed


@pytest.mark.parametrize(("case", "tail", "field", "phrase"), REFUSED, ids=[c[0] for c in REFUSED])
def test_a_setting_refused_by_validate_is_refused_by_the_loader_and_the_run(
    cli: Cli,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    case: str,
    tail: str,
    field: str,
    phrase: str,
) -> None:
    monkeypatch.chdir(tmp_path)  # a run would write its directory here
    _refused_everywhere(cli, tmp_path, case, HEAD + tail, 4, field, phrase)


@pytest.mark.parametrize(
    ("case", "text", "field", "phrase"), REFUSED_FILES, ids=[c[0] for c in REFUSED_FILES]
)
def test_a_strict_setting_is_refused_by_validate_the_loader_and_the_run(
    cli: Cli,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    case: str,
    text: str,
    field: str,
    phrase: str,
) -> None:
    """``"yes"`` and ``1`` are not true, ``"3"`` and ``2.0`` are not integers (attack A13):
    pydantic would take them, the Launchpad would not."""
    monkeypatch.chdir(tmp_path)
    _refused_everywhere(cli, tmp_path, case, text, 4, field, phrase)


@pytest.mark.parametrize("word", ["config", "class", "input"])
def test_an_id_dagster_reserves_is_refused_everywhere(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, word: str
) -> None:
    """Attack A1's other names: an experiment id is its job's name, and Dagster refuses its own
    words and Python's keywords there (validate used to say valid)."""
    monkeypatch.chdir(tmp_path)
    text = f"id: {word}\npipeline:\n  - name: validate\n"
    phrase = f"Dagster accepts as a job name, got {word!r}"
    _refused_everywhere(cli, tmp_path, word, text, 1, "id", phrase)


def test_the_reserved_words_are_dagsters() -> None:
    from dagster._core.definitions.utils import DISALLOWED_NAMES

    from crucible_dagster.experiment.names import DAGSTER_RESERVED

    assert set(DAGSTER_RESERVED) == DISALLOWED_NAMES


def test_yamls_own_bools_and_integers_still_load(cli: Cli, tmp_path: Path) -> None:
    path = tmp_path / "e.yaml"
    path.write_text(
        "id: strict_ok\nseed: 3\npipeline:\n  - name: data_checks\n    enabled: no\n"
        f"    options: {{fail_fast: yes}}\n  - name: cv\n    module: {CV}\n"
        "    options: {folds: 3}\n"
    )
    assert cli("validate", path).code == 0
    assert _definitions(tmp_path).resolve_job_def("strict_ok")


def test_a_stage_option_true_for_an_integer_is_refused_everywhere(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Dagster's Launchpad refuses true for an Int; the file's stage options do too."""
    import dagster as dg

    monkeypatch.chdir(tmp_path)
    text = "id: parity\npipeline:\n  - name: bench\n    options: {n_train: true}\n"
    field = "pipeline[0].options.n_train"
    _refused_everywhere(cli, tmp_path, "stage", text, 4, field, "expected an integer, got true")
    # the same value typed in the Launchpad for the valid file's job is refused before the run
    (tmp_path / "experiments" / "stage.yaml").write_text(text.replace("true", "3"))
    job = _definitions(tmp_path / "experiments").resolve_job_def("parity")
    with pytest.raises(dg.DagsterInvalidConfigError, match="ops:bench:config:n_train"):
        job.execute_in_process(run_config={"ops": {"bench": {"config": {"n_train": True}}}})


def test_strategy_off_unquoted_is_the_word_off(cli: Cli, tmp_path: Path) -> None:
    """YAML 1.1 reads `off` as false: it reaches the IR as the strategy 'off', in a file and in a
    component's inline experiment (which Dagster's own YAML parser read)."""
    experiment = loads_experiment(HEAD + "reliability: {hedging: {strategy: off}}\n")
    assert experiment.reliability and experiment.reliability.hedging
    assert experiment.reliability.hedging.strategy == "off"
    path = tmp_path / "off.yaml"
    path.write_text(
        "id: off_ok\nreliability:\n  hedging: {strategy: off, options: {min_samples: 5}}\n"
        "pipeline:\n  - name: predict\n    options:\n"
        "      variants: {m: {id: openai_compatible, options: {model: x}}}\n"
    )
    assert cli("validate", path).code == 0
    assert _definitions(tmp_path).resolve_job_def("off_ok")


def _inline_component(experiments: list[dict[str, Any]]) -> dg.Definitions:
    import dagster as dg

    from crucible_dagster.dagster_plugin import CrucibleExperimentsComponent

    return dg.build_defs_for_component(CrucibleExperimentsComponent(experiments=experiments))


def _invalid_descriptions(defs: dg.Definitions) -> dict[str, str]:
    """Each invalid file's asset: the file (or ``experiments[i]`` of a component) -> its problem."""
    import dagster as dg

    from crucible_dagster.dagster_plugin.definitions import INVALID_GROUP

    return {
        str(a.metadata["file"]).rsplit("#", 1)[-1]: a.description or ""
        for a in defs.assets
        if isinstance(a, dg.AssetSpec) and a.group_name == INVALID_GROUP
    }


def test_inline_experiments_are_isolated_one_by_one() -> None:
    """A duplicate id, a 3,000-deep mapping, a bad module and a bool for an int each name their
    entry; the good entry loads beside them."""
    deep: Any = 1
    for _ in range(3000):
        deep = {"a": deep}
    step = [{"name": "validate"}]
    defs = _inline_component(
        [
            {"id": "good", "pipeline": step},
            {"id": "twice", "pipeline": step},
            {"id": "twice", "pipeline": step},
            {"id": "deep", "pipeline": step, "metadata": deep},
            {"id": "bad_module", "pipeline": [{"name": "x", "module": "os:system"}]},
            {"id": "bool", "pipeline": step, "seed": True},
        ]
    )
    assert [job.name for job in defs.jobs] == ["good", "twice"]  # the first 'twice' loads
    invalid = _invalid_descriptions(defs)
    assert sorted(invalid) == [f"experiments[{n}]" for n in range(2, 6)]
    assert (
        "experiment id 'twice' is already used by defs.yaml#experiments[1]"
        in (invalid["experiments[2]"])
    )
    assert f"expected nesting at most {MAX_DEPTH} deep" in invalid["experiments[3]"]
    assert "pipeline[0].module: 'os:system' names the standard library" in invalid["experiments[4]"]
    assert "seed: expected an integer, got true" in invalid["experiments[5]"]


def test_inline_experiment_problems_name_their_defs_yaml_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = tmp_path / "proj"
    defs_dir = project / "src" / "parity_inline" / "defs" / "lab"
    defs_dir.mkdir(parents=True)
    (project / "src" / "parity_inline" / "__init__.py").write_text("")
    (project / "src" / "parity_inline" / "defs" / "__init__.py").write_text("")
    (project / "pyproject.toml").write_text(
        '[tool.dg]\ndirectory_type = "project"\n\n[tool.dg.project]\nroot_module = "parity_inline"\n'
    )
    (defs_dir / "defs.yaml").write_text(
        "type: crucible_dagster.dagster_plugin.CrucibleExperimentsComponent\n"
        "attributes:\n"
        "  experiments:\n"
        "    - {id: good, pipeline: [{name: validate}]}\n"
        "    - id: tuned\n"
        "      pipeline: [{name: validate}]\n"
        "      parameters: {a: [1]}\n"
        "      sweep: {metric: m, trials_per_step: true}\n"
        "    - id: hedged\n"
        "      pipeline: [{name: validate}]\n"
        "      reliability: {hedging: {strategy: off}}\n"
    )
    before = snapshot(project)
    monkeypatch.syspath_prepend(str(project / "src"))
    import dagster as dg

    defs = dg.load_from_defs_folder(path_within_project=project)
    assert defs.resolve_job_def("good")
    invalid = _invalid_descriptions(defs)
    assert sorted(invalid) == ["experiments[1]", "experiments[2]"]
    assert (
        "defs.yaml#experiments[1]:8: sweep.trials_per_step: expected an integer, got true"
        in invalid["experiments[1]"]
    )
    # 'off' was read as the strategy: the only problem is that no stage uses hedging
    assert (
        "defs.yaml#experiments[2]:11: reliability.hedging: set, but no" in invalid["experiments[2]"]
    )
    assert "strategy" not in invalid["experiments[2]"]
    assert {k: v for k, v in snapshot(project).items() if "__pycache__" not in k} == before


def test_a_grid_with_null_is_accepted_by_validate_the_loader_and_the_run(
    cli: Cli, tmp_path: Path, artifacts_dir: Path
) -> None:
    """scikit-learn users need ``None`` in a grid; Dagster's config cannot pre-fill it, so the
    loader leaves the Launchpad's grid empty and the run uses the experiment's own."""
    import dagster as dg

    path = tmp_path / "e.yaml"
    path.write_text("id: nullgrid\nparameters: {depth: [null, 5]}\npipeline:\n  - name: validate\n")
    assert cli("validate", path).code == 0
    defs = _definitions(tmp_path)
    assert _invalid_descriptions(defs) == {}
    result = defs.resolve_job_def("nullgrid").execute_in_process(
        instance=dg.DagsterInstance.ephemeral()
    )
    assert result.success
    trials = {p.parent.name for p in (artifacts_dir / "nullgrid").glob("*/trials/*/manifest.json")}
    assert trials == {"depth_None", "depth_5"}  # both trials ran, null included


def _launchpad_failure(text: str, config: dict[str, Any]) -> str:
    import dagster as dg

    from crucible_dagster.dagster_plugin import build_job
    from tests.dagster_helpers import ephemeral_instance

    job = build_job(loads_experiment(text))
    with ephemeral_instance() as instance:
        result = job.execute_in_process(
            instance=instance,
            run_config={"resources": {"crucible": {"config": config}}},
            raise_on_error=False,
        )
    assert not result.success
    failures = [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE]
    assert len(failures) == 1, [f.step_key for f in failures]
    return str(failures[0].step_failure_data.error.message)


@pytest.mark.slow
def test_launchpad_seeds_repeated_are_refused_before_any_trial(artifacts_dir: Path) -> None:
    """Attack A3: Launchpad seeds [1, 1] used to succeed with one trial counted twice; the
    run fails at its start with the file's line, and no trial ran."""
    message = _launchpad_failure(HEAD + "seeds: [1, 2]\n", {"seeds": [1, 1]})
    assert "Failure: resources.crucible.config.seeds[1]: expected distinct seeds, got 1 twice" in (
        message
    )
    assert not list(artifacts_dir.rglob("trials/*")), "a trial ran"


@pytest.mark.slow
def test_launchpad_seed_out_of_range_gets_the_files_message(cli: Cli, tmp_path: Path) -> None:
    """Attack A10: the Launchpad's seed is checked by the IR's rule and worded as the file's
    (not pydantic's 'Input should be greater than or equal to 0')."""
    path = tmp_path / "e.yaml"
    path.write_text(HEAD + "seed: 4294967296\n")
    files = _one_line(cli("validate", path).out, path, 4, "seed", "got 4294967296")
    expected = files.split(": seed: ", 1)[1]
    for bad in (-1, 2**32):
        message = _launchpad_failure(HEAD, {"seed": bad})
        wanted = expected.replace("4294967296", str(bad))
        assert f"Failure: resources.crucible.config.seed: {wanted}" in message, message
