"""Promotion: move a registry alias to a challenger only when the regression gate, paired on
the samples both versions were evaluated on, finds it not worse than the alias's current
holder; rollback: move the alias back to the version it held before.

Every move is recorded: the decision (test, estimate, interval, p) as tags of the challenger's
version, and the alias's history as the registered model's tag ``crucible.alias_history.<alias>``
(a JSON list of versions, oldest first), which ``rollback`` walks back.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from crucible_dagster.experiment.ir import RegressionBaseline
from crucible_dagster.lifecycle import evaluation
from crucible_dagster.lifecycle.mlflow_store import TAG
from crucible_dagster.quality.gate import GateResult, compare_units
from crucible_dagster.runtime.stage import StageError

if TYPE_CHECKING:
    from mlflow import MlflowClient

HISTORY = f"{TAG}alias_history."
#: fewer paired samples than this decide nothing (three equal answers are not "not worse")
MIN_SAMPLES = 20
DECISION = f"{TAG}gate."


def alias_holder(mlflow: MlflowClient, name: str, alias: str) -> str | None:
    """The version ``alias`` points at, None when it points nowhere (or the model is new); any
    other answer of the registry (an error, a server failing) is a StageError: "no champion"
    would let a challenger through without the gate."""
    from mlflow.exceptions import MlflowException

    try:
        return str(mlflow.get_model_version_by_alias(name, alias).version)
    except MlflowException as exc:
        if is_not_found(exc):
            return None
        raise StageError("registry_error", name, f"registered model {name!r}: alias {alias!r}: "
                         f"the registry did not answer the lookup: {shown(exc)}") from None  # fmt: skip


def is_not_found(exc: Any) -> bool:
    """MLflow's "no such model" or "no such alias" (the alias's is a parameter error)."""
    code, message = getattr(exc, "error_code", ""), str(getattr(exc, "message", ""))
    return code == "RESOURCE_DOES_NOT_EXIST" or (
        code == "INVALID_PARAMETER_VALUE" and message.endswith("not found.") and "alias" in message
    )


def shown(exc: Any) -> str:
    """A registry's error message, one bounded line (a server may answer with a page)."""
    from crucible_dagster.common.terminal import terminal_safe

    return terminal_safe(str(getattr(exc, "message", exc)))[:300]


def version_scores(mlflow: MlflowClient, name: str, version: str) -> dict[str, float]:
    """A registered version's evaluation (sample id -> score), from its MLflow run."""
    from mlflow.exceptions import MlflowException

    where = f"registered model {name!r} version {version}"
    try:
        found = mlflow.get_model_version(name, version)
    except MlflowException as exc:
        raise StageError(
            "unknown_version", where, f"{where}: not in the registry: {shown(exc)}"
        ) from None
    path = (found.tags or {}).get(f"{TAG}evaluation")
    if path and (path.startswith("/") or ".." in path.split("/") or "\\" in path):
        raise StageError("invalid_evaluation", where, f"{where}: tag {TAG}evaluation: expected a "
                         f"path inside the version's run, got {path[:80]!r}")  # fmt: skip
    if not found.run_id or not path:
        raise StageError("no_evaluation", where, f"{where}: has no crucible evaluation (tag "
                         f"{TAG}evaluation): it was not registered by a crucible run")  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="crucible-eval-") as folder:
        try:
            local = mlflow.download_artifacts(found.run_id, path, folder)
        except MlflowException as exc:
            raise StageError("no_evaluation", where, f"{where}: its evaluation {path} cannot be "
                             f"read: {shown(exc)}") from None  # fmt: skip
        return evaluation.read(Path(local), f"{where}: {path}")


def judge(
    gate: RegressionBaseline, challenger: dict[str, float], champion: dict[str, float], label: str
) -> GateResult:
    """The gate on the samples both were scored on; other samples make them not comparable
    (a challenger is judged on the champion's samples, all of them)."""
    missing = set(champion) - set(challenger)
    if missing or not champion:
        shared = len(set(champion) & set(challenger))
        return GateResult("not_comparable", f"not compared: the champion {label} was evaluated "
                          f"on {len(champion)} samples, the challenger on {len(challenger)}, "
                          f"{shared} shared: evaluate both on the same samples (the same dataset, "
                          "test_split and seed)", label)  # fmt: skip
    if len(champion) < MIN_SAMPLES:
        return GateResult("not_comparable", f"not compared: {len(champion)} samples, fewer than "
                          f"{MIN_SAMPLES}: too few to rule a regression in or out (a larger "
                          "test_split)", label)  # fmt: skip
    shared_scores = {k: challenger[k] for k in champion}
    return compare_units(gate, label, shared_scores, champion)


def record_decision(
    mlflow: MlflowClient, name: str, version: str, decision: str, result: GateResult, gate: RegressionBaseline,
    alias: str, champion: str | None,
) -> dict[str, Any]:  # fmt: skip
    """The decision as tags of the challenger's version, and as the record returned."""
    record = {
        "decision": decision, "alias": alias, "model": name, "version": version,
        "champion_version": champion, "kind": gate.kind, "margin": gate.margin, "alpha": gate.alpha,
        **{k: v for k, v in asdict(result).items() if k != "decisions"},
    }  # fmt: skip
    stale = {
        k for k in (mlflow.get_model_version(name, version).tags or {}) if k.startswith(DECISION)
    }
    for key, value in record.items():
        if value is not None:
            mlflow.set_model_version_tag(name, version, f"{DECISION}{key}", str(value)[:5000])
            stale.discard(f"{DECISION}{key}")
    for key in stale:  # an earlier decision's figure this one has not: not mixed in
        mlflow.delete_model_version_tag(name, version, key)
    return record


def move_alias(mlflow: MlflowClient, name: str, alias: str, version: str) -> list[str]:
    """Point ``alias`` at ``version`` and append it to the alias's history."""
    history = alias_history(mlflow, name, alias)
    current = alias_holder(mlflow, name, alias)
    if current is not None and (not history or history[-1] != current):
        history.append(current)  # moved by hand, outside crucible: kept in the history
    mlflow.set_registered_model_alias(name, alias, version)
    history.append(version)
    mlflow.set_registered_model_tag(name, f"{HISTORY}{alias}", json.dumps(history))
    return history


def alias_history(mlflow: MlflowClient, name: str, alias: str) -> list[str]:
    """The versions ``alias`` has pointed at, oldest first; a tag that is not such a list is a
    located error (it would send a rollback to a version nobody chose)."""
    from mlflow.exceptions import MlflowException

    try:
        tags = mlflow.get_registered_model(name).tags or {}
    except MlflowException as exc:
        raise StageError(
            "unknown_model", name, f"registered model {name!r}: {shown(exc)}"
        ) from None
    text = tags.get(f"{HISTORY}{alias}")
    if text is None:
        return []
    try:
        found = json.loads(text)
    except json.JSONDecodeError:
        found = None
    if not isinstance(found, list) or not all(isinstance(v, str) and v.isdigit() for v in found):
        raise StageError("invalid_alias_history", name, f"registered model {name!r}: tag "
                         f"{HISTORY}{alias}: expected a JSON list of version numbers, found "
                         f"{text[:80]!r}")  # fmt: skip
    return found


def rollback(mlflow: MlflowClient, name: str, alias: str) -> tuple[str, str]:
    """Move ``alias`` back to the version it held before the current one: (from, to)."""
    history = alias_history(mlflow, name, alias)
    current = alias_holder(mlflow, name, alias)
    if current is None:
        raise StageError("no_alias", name, f"registered model {name!r}: alias {alias!r} points "
                         "at no version: nothing to roll back")  # fmt: skip
    while history and history[-1] == current:
        history.pop()
    if not history:
        raise StageError("no_previous", name, f"registered model {name!r}: alias {alias!r} has "
                         f"held only version {current}: no earlier version to roll back to")  # fmt: skip
    previous = history[-1]
    mlflow.set_registered_model_alias(name, alias, previous)
    mlflow.set_registered_model_tag(name, f"{HISTORY}{alias}", json.dumps(history))
    mlflow.set_model_version_tag(name, current, f"{TAG}rolled_back_from.{alias}", "true")
    return current, previous
