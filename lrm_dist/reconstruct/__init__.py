"""Image + source camera -> mesh, one way for every stage: Reconstructor with mesh_settings (docs/architecture.md, "One reconstructor")."""

from lrm_dist.exports import lazy_exports

__getattr__, __all__ = lazy_exports(__name__, {
    "MESHERS": "lrm_dist.reconstruct.extract",
    "MeshSettings": "lrm_dist.reconstruct.reconstructor",
    "NoSurface": "lrm_dist.reconstruct.extract",
    "Reconstruction": "lrm_dist.reconstruct.reconstructor",
    "Reconstructor": "lrm_dist.reconstruct.reconstructor",
    "mesh_settings": "lrm_dist.reconstruct.reconstructor",
    "resolve_device": "lrm_dist.reconstruct.reconstructor",
})
