"""The asset and check specs of built definitions, whether an asset is a plain spec (the
dataset, a broken file) or part of a materializable report asset."""

from __future__ import annotations

import dagster as dg


def asset_specs(defs: dg.Definitions) -> dict[dg.AssetKey, dg.AssetSpec]:
    specs: dict[dg.AssetKey, dg.AssetSpec] = {}
    for asset in defs.assets or []:
        if isinstance(asset, dg.AssetSpec):
            specs[asset.key] = asset
        elif isinstance(asset, dg.AssetsDefinition):
            specs.update({spec.key: spec for spec in asset.specs})
    return specs


def check_specs(defs: dg.Definitions) -> list[dg.AssetCheckSpec]:
    return [
        spec
        for asset in defs.assets or []
        if isinstance(asset, dg.AssetsDefinition)
        for spec in asset.check_specs
    ]


def stage_graph(job: dg.JobDefinition) -> dg.GraphDefinition:
    """The graph of a job's stage ops: an experiment with file reports runs them inside its
    report asset's graph (``<experiment>__stages``), a plain job at its top level."""
    (node, *others) = job.graph.nodes
    if not others and isinstance(node.definition, dg.GraphDefinition):
        return node.definition
    return job.graph


def stage_step(job: dg.JobDefinition, stage: str) -> str:
    """The step key of a stage's op: ``<experiment>__stages.<stage>`` inside a report asset."""
    graph = stage_graph(job)
    return stage if graph is job.graph else f"{graph.name}.{stage}"
