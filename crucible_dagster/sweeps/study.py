"""The Optuna study of a ``sweep.strategy: optuna`` sweep: where it is stored, its sampler and
its pruner. Optuna (the ``optuna`` extra) is imported here, when a study opens, never with the
package.

Storage: ``optuna.db`` (SQLite) in the sweep's run directory, or the URL in the environment
variable ``sweep.optuna.storage_env`` names (PostgreSQL, so Celery workers share one study).
The study is named after the experiment and the sweep's first run (a re-execution's root), so a
re-execution continues it: from its ancestor's ``optuna.db`` (copied, never written in place) or
from the shared database."""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from crucible_dagster.experiment.ir import Experiment, OptunaSettings

STUDY_FILE = "optuna.db"
#: the schemes a storage URL may use: the database Optuna's RDB storage was built for
STORAGE_SCHEMES = ("sqlite", "postgresql", "postgresql+psycopg2", "mysql", "mysql+pymysql")
#: how long a trial's writer waits for SQLite's lock (parallel trials of one run share the file)
SQLITE_TIMEOUT_S = 60
#: storages kept open in a process, by URL: opening one (an engine, Optuna's schema check) cost
#: more than a light trial's runs; the oldest is closed past this many
MAX_OPEN_STORAGES = 8
_STORAGES: dict[str, Any] = {}


class StudyError(ValueError):
    """A study that cannot open or go on: the extra missing, a bad storage setting, bad scores."""


def optuna_module() -> Any:
    try:
        import optuna
    except ImportError:
        raise StudyError(
            "sweep.strategy 'optuna' needs the optuna extra: pip install 'crucible_dagster[optuna]'"
        ) from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def study_name(experiment: Experiment, root_run_id: str) -> str:
    """One study per sweep run and its re-executions."""
    return f"crucible.{experiment.id}.{root_run_id}"


def storage_url(settings: OptunaSettings, sweep_dir: Path) -> str:
    """The study's storage URL: the named environment variable's, or ``optuna.db`` here."""
    if settings.storage_env is None:
        return f"sqlite:///{sweep_dir / STUDY_FILE}"
    url = os.environ.get(settings.storage_env, "").strip()
    where = f"sweep.optuna.storage_env: environment variable {settings.storage_env}"
    if not url:
        raise StudyError(
            f"{where} is not set (expected a storage URL such as postgresql+psycopg2://...)"
        )
    scheme = url.split("://", 1)[0] if "://" in url else ""
    if scheme not in STORAGE_SCHEMES:
        raise StudyError(
            f"{where}: expected a URL with one of the schemes {', '.join(STORAGE_SCHEMES)}, "
            f"got {scheme[:40]!r}"
        )
    return url


def adopt_earlier_study(sweep_dir: Path, earlier: Sequence[Path]) -> None:
    """A re-execution starts from its latest ancestor's ``optuna.db`` (a copy: the ancestor's
    file is never written again)."""
    target = sweep_dir / STUDY_FILE
    if target.exists():
        return
    for run_dir in earlier:  # nearest first
        found = run_dir / STUDY_FILE
        if found.is_file() and not found.is_symlink():
            partial = sweep_dir / f".{STUDY_FILE}.{os.getpid()}.partial"
            shutil.copyfile(found, partial)
            try:  # parallel steps of a re-execution: the first copy wins, whole
                os.link(partial, target)
            except FileExistsError:
                pass
            finally:
                partial.unlink()
            return


def sampler_for(settings: OptunaSettings, seed: int) -> Any:
    """The sampler, seeded: ``seed`` is the experiment's, mixed with the trial's slot by the
    caller so parallel workers do not draw the same first points."""
    samplers = optuna_module().samplers
    if settings.sampler == "random":
        return samplers.RandomSampler(seed=seed)
    if settings.sampler == "grid":
        return _ask_tell_grid(samplers.GridSampler)(settings.grid(), seed=seed)
    if settings.sampler == "cmaes":
        try:
            import cmaes  # noqa: F401  (optuna imports it lazily, with a longer message)
        except ImportError:
            raise StudyError(
                "sweep.optuna.sampler 'cmaes' needs the cmaes package: pip install "
                "'crucible_dagster[optuna]'"
            ) from None
        return samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False)
    return samplers.TPESampler(seed=seed)


def _ask_tell_grid(grid: type) -> type:
    """Optuna's grid sampler, without its ``study.stop()`` once the grid is walked: that call
    is refused outside ``study.optimize``, and our slots (at most the grid's size, checked
    by the IR) are the stop."""

    class AskTellGridSampler(grid):
        def after_trial(self, *args: Any, **kwargs: Any) -> None:
            return None

    return AskTellGridSampler


def pruner_for(experiment: Experiment) -> Any:
    """``racing`` (ours, over seeds), Optuna's ``median`` and ``wilcoxon`` with their
    defaults, or none."""
    assert experiment.sweep is not None
    settings = experiment.sweep.study
    pruners = optuna_module().pruners
    if settings.pruner == "median":
        return pruners.MedianPruner()
    if settings.pruner == "wilcoxon":
        return pruners.WilcoxonPruner()
    if settings.pruner == "racing":
        from crucible_dagster.sweeps.race_pruner import RacingPruner

        return RacingPruner(experiment.sweep.race, settings.n_trials, experiment.sweep.direction)
    return pruners.NopPruner()


def _storage_key(url: str, study_file: Path) -> str | None:
    """A kept storage's key: the URL, and for the run directory's SQLite file its inode, so a
    file removed and made again at the same path is never written through a stale engine."""
    if not url.startswith("sqlite"):
        return url
    try:
        return f"{url}#{study_file.stat().st_ino}"
    except OSError:
        return None  # created by this open: kept from the next open on, by its inode


def open_study(experiment: Experiment, sweep_dir: Path, name: str, *, sampler_seed: int = 0) -> Any:
    """The study (created on first use, loaded after: a resumed sweep continues it)."""
    assert experiment.sweep is not None
    settings = experiment.sweep.study
    optuna = optuna_module()
    url = storage_url(settings, sweep_dir)
    key = _storage_key(url, sweep_dir / STUDY_FILE)
    storage = _STORAGES.get(key) if key is not None else None
    if storage is None:
        kwargs = {"connect_args": {"timeout": SQLITE_TIMEOUT_S}} if url.startswith("sqlite") else {}
        try:
            storage = optuna.storages.RDBStorage(url, engine_kwargs=kwargs)
        except Exception as exc:  # a driver's own error: name the setting, never the URL
            where = settings.storage_env or STUDY_FILE
            raise StudyError(
                f"the study's storage ({where}) cannot be opened: {type(exc).__name__}"
            ) from None
        if key is not None:
            _STORAGES[key] = storage
        while len(_STORAGES) > MAX_OPEN_STORAGES:  # a long-lived worker serves many sweeps
            _STORAGES.pop(next(iter(_STORAGES))).remove_session()
    return optuna.create_study(
        storage=storage,
        sampler=sampler_for(settings, sampler_seed),
        pruner=pruner_for(experiment),
        study_name=name,
        direction=experiment.sweep.direction,
        load_if_exists=True,
    )
