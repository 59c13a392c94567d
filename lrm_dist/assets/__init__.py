"""Asset stage: Objaverse, local folders and procedural furniture into one checked asset manifest."""

from lrm_dist.assets.build import AssetsSummary, build_assets
from lrm_dist.assets.manifest import read_asset_manifest

__all__ = ["AssetsSummary", "build_assets", "read_asset_manifest"]
