"""How a package publishes its API: names imported from their modules on first use (PEP 562).

Every stage package's ``__init__`` is a docstring and one ``lazy_exports`` call, so ``import lrm_dist.train``
(what the config and the CLI do) does not pull in torch, Ray or Blender until a function is used.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def lazy_exports(package: str, exports: dict[str, str]) -> tuple[Callable[[str], Any], list[str]]:
    """``(__getattr__, __all__)`` for ``package``: each name in ``exports`` is read from its module when first asked for."""

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(module), name)

    return __getattr__, sorted(exports)
