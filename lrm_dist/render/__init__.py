"""Render stage: Blender (bpy, imported lazily in workers) fanned out on Ray into WebDataset shards."""

from lrm_dist.exports import lazy_exports

__getattr__, __all__ = lazy_exports(__name__, {
    "RenderSummary": "lrm_dist.render.stage",
    "render_assets": "lrm_dist.render.stage",
})
