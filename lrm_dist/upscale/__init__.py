"""Real-ESRGAN upscaling stage: architectures, weight loading/conversion, tiled inference, the Ray stage.

``upscale_folder``, ``Upscaler`` and ``upscale_dataset`` are imported lazily, so importing the package
(and its config) does not import torch.
"""

from __future__ import annotations

from typing import Any

_LAZY = {
    "upscale_folder": "lrm_dist.upscale.folder",
    "Upscaler": "lrm_dist.upscale.actor",
    "upscale_dataset": "lrm_dist.upscale.actor",
    "create_actors": "lrm_dist.upscale.actor",
}
__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'lrm_dist.upscale' has no attribute {name!r}")
