"""Real-ESRGAN upscaling stage: architectures, weight loading/conversion, tiled inference, the Ray stage."""

from lrm_dist.exports import lazy_exports

__getattr__, __all__ = lazy_exports(__name__, {
    "Upscaler": "lrm_dist.upscale.actor",
    "create_actors": "lrm_dist.upscale.actor",
    "upscale_dataset": "lrm_dist.upscale.actor",
    "upscale_folder": "lrm_dist.upscale.folder",
})
