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
