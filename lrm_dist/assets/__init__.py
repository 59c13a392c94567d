"""Asset stage: Objaverse, local folders and procedural furniture into one checked asset manifest."""

from lrm_dist.exports import lazy_exports

__getattr__, __all__ = lazy_exports(__name__, {
    "AssetsSummary": "lrm_dist.assets.stage",
    "build_assets": "lrm_dist.assets.stage",
    "read_asset_manifest": "lrm_dist.assets.manifest",
})
