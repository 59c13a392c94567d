"""Render stage: Blender (bpy, imported lazily in workers) fanned out on Ray into WebDataset shards."""

from lrm_dist.render.pipeline import RenderSummary, render_assets

__all__ = ["RenderSummary", "render_assets"]
