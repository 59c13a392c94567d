"""Asset stage: Objaverse, local folders and procedural furniture into one checked asset manifest."""

from lrm_dist.exports import lazy_exports

__getattr__, __all__ = lazy_exports(__name__, {
    "AssetsSummary": "lrm_dist.assets.build",
    "build_assets": "lrm_dist.assets.build",
    "read_asset_manifest": "lrm_dist.assets.manifest",
})
