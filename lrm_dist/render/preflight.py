"""What the render stage needs, checked before any asset is rendered: bpy, Blender 5, a GPU for a GPU device.

``check_driver`` runs in the driver when the render actors share its machine (a local Ray): bpy is
found without importing it. ``check_blender`` runs in each render actor before its Blender opens.
A miss is a ``RenderSetupError``: one line naming the cause and the fix, raised at once instead of
actors that never come up until ``render.actors.start_timeout_s``.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import socket
import sys

from lrm_dist.errors import UserError
from lrm_dist.render.config import RenderConfig

INSTALL = "pip install 'lrm-dist[render]'"
BLENDER_MAJOR = 5
"""The scene code is Blender 5's (compositor node groups); the ``render`` extra pins bpy==5.0.1."""
BPY_PYTHON = (3, 11)
"""bpy 5.0.1 is published for CPython 3.11 only."""
GPU_DEVICES = ("CUDA", "OPTIX")


class RenderSetupError(UserError):
    """This machine cannot render (no bpy, another Blender, no GPU for a GPU device): one line, never retried."""


def _install_hint() -> str:
    major, minor = sys.version_info[:2]
    here = "" if (major, minor) == BPY_PYTHON else f"; this is Python {major}.{minor}"
    return f"install it with {INSTALL} (bpy 5.0.1, which needs Python {BPY_PYTHON[0]}.{BPY_PYTHON[1]}{here})"


def _wrong_blender(version: str, where: str) -> RenderSetupError:
    return RenderSetupError(f"Blender {version} {where}, but the render code needs Blender {BLENDER_MAJOR}.x: "
                            f"{_install_hint()}")


def check_driver() -> None:
    """Driver side, for a local Ray: bpy installed (found, not imported) and, when pip says, a Blender 5 build."""
    if importlib.util.find_spec("bpy") is None:
        raise RenderSetupError(f"rendering needs bpy (Blender as a Python module), which is not installed: "
                               f"{_install_hint()}")
    try:
        version = importlib.metadata.version("bpy")
    except importlib.metadata.PackageNotFoundError:  # a bpy not installed by pip: the actor checks it
        return
    if version.split(".")[0] != str(BLENDER_MAJOR):
        raise _wrong_blender(version, "is installed (bpy)")


def check_blender(cfg: RenderConfig) -> str:
    """Render actor side: import bpy, check its Blender version and the GPU ``render.cycles_device`` asks for.

    Returns Blender's version string. Every failure names this host, as actors may run anywhere.
    """
    host = socket.gethostname()
    try:
        import bpy
    except ImportError as exc:  # not installed, or a library it needs is missing: the cause says which
        cause = (str(exc).strip().splitlines() or [""])[0][:200]
        raise RenderSetupError(f"bpy (Blender as a Python module) cannot be imported on {host} "
                               f"({type(exc).__name__}: {cause}): {_install_hint()}") from None
    if bpy.app.version[0] != BLENDER_MAJOR:
        raise _wrong_blender(bpy.app.version_string, f"on {host}")
    if cfg.engine == "CYCLES" and cfg.cycles_device in GPU_DEVICES:
        from lrm_dist.render.scene import pick_cycles_device

        try:
            pick_cycles_device(bpy, cfg.cycles_device)
        except RuntimeError:
            raise RenderSetupError(
                f"render.cycles_device={cfg.cycles_device} but Blender sees no {cfg.cycles_device} device on {host}: give "
                f"the render actors a GPU (render.actors.num_gpus, GPU nodes) or set render.cycles_device=auto (a GPU when there is one, "
                f"else the CPU)") from None
    return bpy.app.version_string
