"""Inference and serving: image -> triplanes -> mesh (GLB/PLY/OBJ), the infer CLI and the Ray Serve app."""

from lrm_dist.exports import lazy_exports

__getattr__, __all__ = lazy_exports(__name__, {
    "build_app": "lrm_dist.serve.app",
    "infer_images": "lrm_dist.serve.infer",
    "run_app": "lrm_dist.serve.app",
})
