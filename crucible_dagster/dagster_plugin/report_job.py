"""Build a linear experiment's job: a plain job of one op per stage or, with file reports,
the job of its report asset (``report_graph`` says why and how that asset works).

The report asset's job is resolved here, on its own asset, rather than by the code location's
``Definitions`` (``define_asset_job``): Dagster resolves such a job by scanning every asset of
the location, so a folder of 1000 experiments took 1000 x 1000 steps to load. Its config
mapping takes the schema the same ops have as a plain job, built when Dagster first asks for
it (the snapshot the UI reads), not at load.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import dagster as dg

# the definitions' config-schema interface, to give a config mapping a schema built on demand
from dagster._core.definitions.assets.graph.asset_graph import AssetGraph
from dagster._core.definitions.definition_config_schema import IDefinitionConfigSchema

from crucible_dagster import Experiment, Registry
from crucible_dagster.dagster_plugin.io_manager import IO_MANAGER_KEY
from crucible_dagster.dagster_plugin.ops import LAST_CONTEXT_OUT, build_stage_op
from crucible_dagster.dagster_plugin.report_events import quality_check_specs
from crucible_dagster.dagster_plugin.report_graph import StageRole, checks_node_name, checks_op
from crucible_dagster.dagster_plugin.translator import CrucibleTranslator


@dataclass
class LinearJob:
    """A linear experiment's job and, with file reports, the report asset it materializes."""

    job: dg.JobDefinition
    asset: dg.AssetsDefinition | None = None


def linear_job(
    experiment: Experiment,
    translator: CrucibleTranslator,
    registry: Registry,
    resource_defs: Mapping[str, Any],
    executor_def: dg.ExecutorDefinition,
) -> LinearJob:
    """One op per enabled stage, linear dependencies in pipeline order; with file reports, the
    graph is their asset and the job that asset's job (``report_graph``)."""
    spec = translator.get_job_spec(experiment)
    reports = [
        translator.get_asset_spec(experiment, output)
        for output in experiment.outputs
        if output.sink != "stdout"
    ]
    outputs = {report.key: report.key.to_python_identifier() for report in reports}
    ops = _stage_ops(experiment, translator, registry, spec.name, outputs if reports else None)
    # Each op definition is unique to its experiment; the node is named after the stage.
    aliases = [
        translator.get_op_spec(experiment, s.name).node_name for s in experiment.enabled_stages
    ]

    def plain() -> dg.JobDefinition:
        graph = dg.GraphDefinition(
            name=spec.name,
            node_defs=ops,
            dependencies=_chain(ops, aliases),
            description=spec.description,
        )
        return graph.to_job(
            name=spec.name,
            description=spec.description,
            resource_defs=dict(resource_defs),
            executor_def=executor_def,
            tags=spec.tags,
        )

    if not reports:
        return LinearJob(plain())
    # its IO manager bound (the stages hand their Context on through it), as a job binds it
    io_manager = resource_defs[IO_MANAGER_KEY]
    asset = _report_asset(
        experiment, translator, spec.name, ops, aliases, reports, outputs, io_manager
    )
    unresolved = dg.define_asset_job(
        name=spec.name,
        # the reports and their checks (a translator may put a check on another asset)
        selection=dg.AssetSelection.assets(*outputs) | dg.AssetSelection.checks(*asset.check_keys),
        config=_flat_config(asset.node_def.name, plain),
        description=spec.description,
        tags=spec.tags,
        executor_def=executor_def,
    )
    return asset_job(unresolved, asset, resource_defs)


def asset_job(
    unresolved: dg.UnresolvedAssetJobDefinition,
    asset: dg.AssetsDefinition,
    resource_defs: Mapping[str, Any],
) -> LinearJob:
    """The job materializing ``asset`` (a report's, a sweep's), resolved on that asset alone
    (see the module's docstring), with the run's resources but the IO manager it binds."""
    others = {k: v for k, v in resource_defs.items() if k != IO_MANAGER_KEY}  # the asset's own
    job = unresolved.resolve(asset_graph=AssetGraph.from_assets([asset]), resource_defs=others)
    return LinearJob(job, asset)


def _stage_ops(
    experiment: Experiment,
    translator: CrucibleTranslator,
    registry: Registry,
    job_name: str,
    outputs: Mapping[dg.AssetKey, str] | None,
) -> list[dg.OpDefinition]:
    enabled = experiment.enabled_stages
    ops = []
    for index, stage_def in enumerate(enabled):
        last = index == len(enabled) - 1
        role = (
            StageRole(experiment, translator, job_name, outputs if last else {})
            if outputs is not None
            else None
        )
        outs = (
            {**LAST_CONTEXT_OUT, **{name: _REPORT_OUT for name in outputs.values()}}
            if outputs is not None and last
            else None
        )
        ops.append(
            build_stage_op(
                experiment,
                stage_def,
                registry.resolve(stage_def.implementation),
                translator=translator,
                registry=registry,
                takes_upstream=index > 0,
                asset_step=role,
                outs=outs,
            )
        )
    return ops


#: a report's output: its materialization (the files are in the run directory)
_REPORT_OUT = dg.Out(dg.Nothing, is_required=False)


def _chain(
    ops: Sequence[dg.OpDefinition], aliases: Sequence[str]
) -> dict[dg.NodeInvocation, dict[str, dg.IDependencyDefinition]]:
    dependencies: dict[dg.NodeInvocation, dict[str, dg.IDependencyDefinition]] = {}
    for index, op in enumerate(ops):
        upstream = {"upstream": dg.DependencyDefinition(aliases[index - 1])} if index else {}
        dependencies[dg.NodeInvocation(op.name, alias=aliases[index])] = upstream
    return dependencies


def _report_asset(
    experiment: Experiment,
    translator: CrucibleTranslator,
    job_name: str,
    ops: Sequence[dg.OpDefinition],
    aliases: Sequence[str],
    reports: Sequence[dg.AssetSpec],
    outputs: Mapping[dg.AssetKey, str],
    io_manager: Any,
) -> dg.AssetsDefinition:
    """The graph of the stage ops (and the checks op) as the reports' multi-asset; ``outputs``:
    each report's output name on the last stage's op, as ``linear_job`` gave the ops."""
    check_specs = quality_check_specs(experiment, translator)
    nodes, dependencies = list(ops), _chain(ops, aliases)
    mappings = [
        dg.OutputMapping(
            graph_output_name=name, mapped_node_name=aliases[-1], mapped_node_output_name=name
        )
        for name in outputs.values()
    ]
    if check_specs:
        node, op_name = checks_node_name(experiment, translator)
        # the report the checks are on (a translator may put them elsewhere: the first report)
        checked = next((k for k in outputs if k == check_specs[0].asset_key), next(iter(outputs)))
        nodes.append(checks_op(experiment, translator, check_specs, job_name, op_name, checked))
        dependencies[dg.NodeInvocation(op_name, alias=node)] = {
            "report": dg.DependencyDefinition(aliases[-1], outputs[checked])
        }
        mappings.extend(
            dg.OutputMapping(
                graph_output_name=check.get_python_identifier(),
                mapped_node_name=node,
                mapped_node_output_name=check.get_python_identifier(),
            )
            for check in check_specs
        )
    graph = dg.GraphDefinition(
        name=graph_name(job_name, nodes),
        node_defs=nodes,
        dependencies=dependencies,
        output_mappings=mappings,
    )
    return dg.AssetsDefinition(
        node_def=graph,
        keys_by_output_name={name: key for key, name in outputs.items()},
        specs=[report.replace_attributes(skippable=True) for report in reports],
        check_specs_by_output_name={check.get_python_identifier(): check for check in check_specs},
        can_subset=True,
        resource_defs={IO_MANAGER_KEY: io_manager},
    )


def graph_name(job_name: str, nodes: Sequence[dg.NodeDefinition]) -> str:
    """``<job>__stages``: the job's own graph has the job's name, and Dagster wants one
    definition per name in a code location (an experiment id has no ``__``, so no other
    experiment's job or op takes it); a stage's op of that name pushes it aside."""
    name = f"{job_name}__stages"
    while any(node.name == name for node in nodes):
        name = f"{name}_"
    return name


def _flat_config(graph_name: str, plain: Callable[[], dg.JobDefinition]) -> dg.ConfigMapping:
    """The job's run config as the plain job of the same ops takes it, nested for the graph."""

    def nest(config: Mapping[str, Any]) -> dict[str, Any]:
        nested = dict(config or {})
        if "ops" in nested:
            nested["ops"] = {graph_name: {"ops": nested["ops"]}}
        return nested

    return dg.ConfigMapping(
        config_fn=nest, config_schema=_PlainJobSchema(plain), receive_processed_config_values=False
    )


class _PlainJobSchema(IDefinitionConfigSchema):
    """The run config schema of the plain job ``build`` makes, built when first asked for."""

    def __init__(self, build: Callable[[], dg.JobDefinition]) -> None:
        self._build: Callable[[], dg.JobDefinition] | None = build
        self._field: dg.Field | None = None

    def as_field(self) -> dg.Field:
        if self._field is None:
            assert self._build is not None
            self._field = dg.Field(self._build().run_config_schema.run_config_schema_type)
            self._build = None  # the plain job's ops and resources need not stay alive
        return self._field
