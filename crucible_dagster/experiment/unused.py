"""IR settings the original's IR has and this port does not act on: a file that sets one is
refused by ``crucible validate`` (and shown invalid in the Dagster UI), never run as if it
had an effect. Settings that a stage acts on are refused only when no stage uses them (see
``Stage.uses`` and ``runtime.preflight.setting_problems``).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from crucible_dagster.experiment.ir import Experiment, ModelRef

SERVING = (
    "serving is out of scope: the promote stage moves a registry alias; serve the alias with "
    "your serving stack (e.g. `mlflow models serve -m models:/<name>@champion`)"
)
#: training settings no scikit-learn estimator can act on, refused when set to anything else
TRAINING_ONLY = {"device": "cpu", "mixed_precision": False}

#: dotted IR paths that nothing in crucible_dagster acts on, and what to do instead
NOT_SUPPORTED: dict[str, str] = {
    "reliability.stats.effect_size_type": "every test reports its own effect size by name",
    "reliability.stats.options": "set options on the bench stage",
    "reliability.ensemble.options": "set the ensemble's fields (strategy, weights, ...)",
    "reliability.fairness.options": "set options on the fairness stage",
    "reliability.guardrails.options": "set adapter_options on the guardrails stage",
    "backend.model_version": "name the model in backend.options (e.g. options.model)",
    "backend.deployment_id": "name the endpoint in backend.endpoint_url",
    "training_config.gradient_clipping": "scikit-learn estimators take no gradient clipping",
    "training_config.options": "put the estimator's parameters in training_config.model_ref.options",
    "deployment.target": SERVING,
    "deployment.resources": SERVING,
    "deployment.scaling": SERVING,
    "deployment.health_check": SERVING,
    "deployment.endpoint": SERVING,
    "deployment.replicas": SERVING,
    "deployment.options": "set the alias, environment and strategy",
}
#: settings a stage acts on: refused when no stage of the pipeline uses them
USED_BY_STAGES: dict[str, str] = {
    "backend": "predict or generate",
    "reliability.ensemble": "ensemble",
    "reliability.hedging": "predict or generate, with an openai_compatible backend",
    "reliability.circuit_breaker": "predict or generate, with an openai_compatible backend",
    "reliability.fairness": "fairness",
    "reliability.drift": "drift",
    "reliability.feedback": "feedback",
    "reliability.monitoring": "monitor",
    "reliability.guardrails": "guardrails",
    "budget": "predict, generate or ensemble (the stages whose backends send requests)",
    "training_config": "train",
    "tracking": "register, promote, or drift with reference_model",
    "deployment": "promote",
    "model_version": "promote",
}
#: the promote stage, by its registered name or its class path: a baseline with 'id' is the
#: registered version it compares against
PROMOTE_STAGE = ("promote", "crucible_dagster.lifecycle.promote_stage:PromoteStage")


def set_value(model: BaseModel, path: str) -> Any:
    """The value at ``path`` when the file set it, else None."""
    current: Any = model
    for part in path.split("."):
        if not isinstance(current, BaseModel) or part not in current.model_fields_set:
            return None
        current = getattr(current, part)
    return current


def is_set(model: BaseModel, path: str) -> bool:
    return set_value(model, path) not in (None, {}, [])


def unsupported_settings(experiment: Experiment) -> list[tuple[str, str]]:
    """(field path, message) for each setting the file gives that this port does not support."""
    found = [
        (
            path,
            f"not supported by crucible_dagster (the original's IR has it; here it would have no effect): {advice}",
        )
        for path, advice in NOT_SUPPORTED.items()
        if is_set(experiment, path)
    ]
    if experiment.backend is not None and experiment.backend.profile != "default":
        found.append(
            (
                "backend.profile",
                f"not supported by crucible_dagster: only 'default', found {experiment.backend.profile!r}; "
                "put the backend's settings in backend.options",
            )
        )
    training = experiment.training_config
    for name, only in TRAINING_ONLY.items():
        value = getattr(training, name) if training is not None else only
        if value != only:
            found.append((f"training_config.{name}", f"not supported: scikit-learn estimators "
                          f"train on the CPU in full precision; expected {only!r}, got {value!r}"))  # fmt: skip
    promotes = any(s.implementation in PROMOTE_STAGE for s in experiment.enabled_stages)
    if isinstance(experiment.baseline, ModelRef) and not promotes:
        found.append(
            (
                "baseline",
                "a model reference (baseline with 'id') is the registered version the promote "
                "stage compares against, and this pipeline has no promote stage; the regression "
                "gate between runs takes 'baseline: {metric: ...}'",
            )
        )
    guardrails = experiment.reliability.guardrails if experiment.reliability else None
    if guardrails is not None and guardrails.content_moderation:
        found.append(
            (
                "reliability.guardrails.content_moderation",
                "not supported: no offline content-moderation method ships with crucible_dagster; "
                "call your moderation service from a guardrails adapter (adapter: package.module:Class)",
            )
        )
    return found


def unused_settings(experiment: Experiment) -> list[str]:
    """The same as lines, for experiments built in Python (logged when a run starts)."""
    return [f"{path}: {message}" for path, message in unsupported_settings(experiment)]
