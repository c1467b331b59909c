# Two commands do all the set-up: `make demo` and `make test`. Every target
# creates and reuses the virtualenv in .venv, and runs Dagster on an embedded
# SQLite instance under .dagster_home inside the checkout.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export DAGSTER_HOME := $(CURDIR)/.dagster_home
export CRUCIBLE_ARTIFACTS_DIR ?= $(CURDIR)/artifacts

.PHONY: demo demo-eval demo-lifecycle test test-fast test-cost test-py310 lint fmt bench ui ui-postgres workers workers-stop clean venv

venv: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,examples,celery]'
	@touch $(STAMP)

# The instance's tables are created once, before any run: concurrent first runs on a fresh
# instance (SQLite or PostgreSQL) would otherwise race to create them.
$(DAGSTER_HOME)/dagster.yaml: dagster.yaml $(STAMP)
	@mkdir -p $(DAGSTER_HOME)
	@cp dagster.yaml $(DAGSTER_HOME)/dagster.yaml
	@$(BIN)/dagster instance migrate >/dev/null

# The demo prints each stage as it ends (from the run's telemetry.jsonl) and the summary. Dagster's
# console logger is set to INFO by a run config file, so its DEBUG lines (one per event) stay in
# the instance's event log, which keeps every event whatever the console shows; warnings and
# errors still print. `dagster job execute` is superseded by `dg launch`, which is not installed.
DEMO_CONFIG := $(DAGSTER_HOME)/demo_console_info.yaml
DEMO_JOB := $(BIN)/dagster job execute -f definitions.py -j classifier_comparison -c $(DEMO_CONFIG)

demo: $(STAMP) $(DAGSTER_HOME)/dagster.yaml
	@printf 'loggers:\n  console:\n    config:\n      log_level: INFO\n' > $(DEMO_CONFIG)
	@PYTHONWARNINGS='ignore:Function `job_execute_command` is superseded' \
		$(BIN)/python -m crucible_dagster.contrib.demo_summary classifier_comparison -- $(DEMO_JOB)

# The evaluation demo (issue 24): qa_eval, two prompts x two models on GSM8K-format questions,
# against the bundled OpenAI-compatible server, which the demo starts on a free port of
# 127.0.0.1 (CRUCIBLE_LLM_URL points the experiment at it) and stops however the demo ends.
# The same quiet console as `make demo`; the summary adds each configuration's cost and the
# per-sample comparison, and the server's own count of requests and tokens.
DEMO_EVAL_JOB := $(BIN)/dagster job execute -f definitions.py -j qa_eval -c $(DEMO_CONFIG)

# The model lifecycle demo (issue 28): train_and_promote three times as a Dagster job, on the
# MLflow store under the artifacts root: the file's logistic regression (the first version is
# the champion), a random forest (promoted only if the gate finds it not worse by more than 5
# points), and DummyClassifier, deliberately poor: refused, the model asset's check fails and
# the champion stays. `crucible model versions experiments/train_and_promote.yaml` lists them.
CANDIDATE = printf 'ops:\n  train:\n    config:\n      architecture: %s\nloggers:\n  console:\n    config:\n      log_level: INFO\n'
LIFECYCLE_JOB := $(BIN)/dagster job execute -f definitions.py -j train_and_promote

demo-lifecycle: $(STAMP) $(DAGSTER_HOME)/dagster.yaml
	@$(CANDIDATE) LogisticRegression > $(DAGSTER_HOME)/candidate_1.yaml
	@$(CANDIDATE) RandomForestClassifier > $(DAGSTER_HOME)/candidate_2.yaml
	@$(CANDIDATE) DummyClassifier > $(DAGSTER_HOME)/candidate_3.yaml
	@for n in 1 2 3; do PYTHONWARNINGS='ignore:Function `job_execute_command` is superseded' \
		$(LIFECYCLE_JOB) -c $(DAGSTER_HOME)/candidate_$$n.yaml 2>&1 | grep -E 'run directory|ERROR' | tail -2; done
	@$(BIN)/crucible model versions experiments/train_and_promote.yaml

demo-eval: $(STAMP) $(DAGSTER_HOME)/dagster.yaml
	@printf 'loggers:\n  console:\n    config:\n      log_level: INFO\n' > $(DEMO_CONFIG)
	@PYTHONWARNINGS='ignore:Function `job_execute_command` is superseded' \
		$(BIN)/python -m crucible_dagster.contrib.demo_eval qa_eval -- $(DEMO_EVAL_JOB)

# Tests run on every core (pytest-xdist), a test file's tests on one worker (--dist loadfile):
# a live module's webserver and daemon are module fixtures, and with tests split over both
# workers each started its own (xdist_group marks are ignored by pytest-xdist 3.8 on pytest
# 9.2). The 15 slowest are listed at the end.
# --no-loadscope-reorder keeps the order of tests/conftest.py (live and integration files
# first): by default xdist hands out the files with the most tests first, which left the
# one- and two-test live files (a minute or two each) to the last minutes of the run.
# PYTHONDONTWRITEBYTECODE is cleared for the tests: with it, every worker compiles and
# assertion-rewrites every module again (about 10 s each) instead of reading __pycache__.
# Temporary files (every test's tmp_path, its Dagster instance's SQLite files, its subprocesses'
# files) go to memory where /dev/shm is a writable tmpfs: on this project's machines a file
# removed from the ext4 disk costs about 0.4 ms and an SQLite commit waits for fsync, which
# made a third of `make test-fast`. TEST_TMPDIR= keeps the system's temporary folder.
TEST_TMPDIR ?= $(shell test -d /dev/shm -a -w /dev/shm && echo /dev/shm/crucible-tests)
PYTEST := $(if $(TEST_TMPDIR),mkdir -p $(TEST_TMPDIR) && TMPDIR=$(TEST_TMPDIR)) \
	PYTHONDONTWRITEBYTECODE= $(BIN)/python -m pytest -q -p no:cacheprovider --dist loadfile --no-loadscope-reorder

# One xdist worker per core, plus one: the third worker fills the waits of the live and Celery
# tests (their servers' queues, workers starting, a sensor's 5 s loop) with other tests' work.
# It costs CPU (1 to 9% more) and saves time. Measured side by side on 2 cores, two workers
# then three in turn: on 2026-12-04, on a faster machine, 283 to 323 s of pytest (mean 303)
# against 314 and 318 s; on a slower one, 372 to 389 s against 396 to 429 s (the whole make
# test 0.90 to 0.97 times as long, pair by pair). Four workers were slower than three (422 s
# against 364 s, 18% more CPU). `make test WORKERS=2` for one per core.
WORKERS ?= $(shell n=$$(nproc 2>/dev/null || getconf _NPROCESSORS_ONLN 2>/dev/null || echo 1); \
	echo $$((n + 1)))
test: $(STAMP)
	$(PYTEST) -n $(WORKERS) --timeout=600 --durations=15

# Unit tests only: no Dagster, services, subprocesses or browsers. tests/integration is not even
# collected, and --no-dagster fails any test (or collection) that imports dagster: the workers
# never pay its 2 s import. A unit test that needs Dagster imports it inside and is marked
# integration; one over a second is marked slow. Both still run under make test.
FAST := -n 2 --timeout=120 --ignore=tests/integration --no-dagster \
	-m "not integration and not postgres and not live and not slow"

test-fast: $(STAMP)
	$(PYTEST) $(FAST)

# make test, then the CPU each test file spent (its pytest process and the subprocesses it
# waited for): the suite is CPU-bound, so this is where its time goes (tests/cpu_cost.py).
test-cost: $(STAMP)
	$(PYTEST) -n $(WORKERS) --timeout=600 -p tests.cpu_cost

# The same unit tests on Python 3.10, the lowest version supported (as Dagster's), in a virtualenv
# of their own: `make test-py310 PY310=/path/to/python3.10`. Not part of `make test`, whose install
# test (tests/integration/test_dg_uv_project.py) runs a dg project on 3.10 all the same.
PY310 ?= python3.10
VENV310 ?= .venv-py310

$(VENV310)/.installed: pyproject.toml
	@test -x $(VENV310)/bin/python || $(PY310) -m venv $(VENV310)
	$(VENV310)/bin/python -m pip install --quiet --upgrade pip
	$(VENV310)/bin/python -m pip install --quiet -e '.[dev,examples,celery]'
	@touch $@

test-py310: $(VENV310)/.installed
	$(subst $(BIN)/python,$(VENV310)/bin/python,$(PYTEST)) $(FAST)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy crucible_dagster definitions.py benchmarks tests

fmt: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: $(STAMP) $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/python -m benchmarks

# `dg dev` (dagster-dg-cli, in the dev extra: Dagster's current command, which `dagster dev`
# now tells you to use) on the checkout's workspace.yaml, which it takes as `dagster dev` did.
# It runs from inside DAGSTER_HOME: started beside the repository's dagster.yaml (the instance
# template) it would warn that a config file sits outside DAGSTER_HOME.
ui: $(STAMP) $(DAGSTER_HOME)/dagster.yaml
	cd $(DAGSTER_HOME) && $(CURDIR)/$(BIN)/dg dev -w $(CURDIR)/workspace.yaml -h 127.0.0.1 -p 3000

# Same UI on PostgreSQL: every connection field comes from the environment
# (CRUCIBLE_PG_HOST, CRUCIBLE_PG_PORT, CRUCIBLE_PG_USER, CRUCIBLE_PG_PASSWORD, CRUCIBLE_PG_DB).
ui-postgres: $(STAMP)
	@mkdir -p $(CURDIR)/.dagster_home_pg && cp dagster.postgres.yaml $(CURDIR)/.dagster_home_pg/dagster.yaml
	DAGSTER_HOME=$(CURDIR)/.dagster_home_pg $(BIN)/dagster instance migrate
	cd $(CURDIR)/.dagster_home_pg && DAGSTER_HOME=$(CURDIR)/.dagster_home_pg $(CURDIR)/$(BIN)/dg dev -w $(CURDIR)/workspace.yaml -h 127.0.0.1 -p 3000

# Celery workers for `executor: celery` (N of them, default 2), on the broker in
# $CRUCIBLE_CELERY_BROKER (default RabbitMQ on 127.0.0.1:5672); pid and log files in
# $(DAGSTER_HOME)/celery_workers. Runs and workers must share the instance (PostgreSQL
# across machines: dagster.postgres.yaml) and CRUCIBLE_ARTIFACTS_DIR.
N ?= 2
workers: $(STAMP) $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/python -m crucible_dagster.dagster_plugin.celery.workers start -n $(N)

workers-stop: $(STAMP)
	$(BIN)/python -m crucible_dagster.dagster_plugin.celery.workers stop

clean:
	rm -rf $(VENV) .venv-py310 .dagster_home .dagster_home_pg artifacts reports .pytest_cache .mypy_cache .ruff_cache
