"""Image + source camera -> mesh, one way for every stage: ``Reconstructor`` (eval's actors, ``lrm-dist infer``,
the Serve app) with ``mesh_settings``, the one rule for the mesher, grid resolution and iso-level defaults.

``extract`` holds the steps it runs (factorised density grid, meshers, vertex colours); see
``docs/architecture.md`` ("One reconstructor").
"""

from lrm_dist.reconstruct.extract import MESHERS, NoSurface
from lrm_dist.reconstruct.reconstructor import (
    MeshSettings,
    Reconstruction,
    Reconstructor,
    mesh_settings,
    resolve_device,
)

__all__ = ["MESHERS", "MeshSettings", "NoSurface", "Reconstruction", "Reconstructor", "mesh_settings",
           "resolve_device"]
