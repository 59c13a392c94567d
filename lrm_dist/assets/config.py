"""Asset stage settings: which sources to read and the limits a mesh must respect."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator

from lrm_dist.assets.categories import CATEGORIES, check_categories
from lrm_dist.geometry.limits import MAX_FACES, MAX_FILE_MB


class _Source(BaseModel):
    model_config = ConfigDict(extra="forbid")

    categories: list[str] = Field(default_factory=lambda: list(CATEGORIES))

    @field_validator("categories")
    @classmethod
    def _known(cls, value: list[str]) -> list[str]:
        return check_categories(value)


class ProceduralSource(_Source):
    """The built-in parametric furniture generator: no downloads, deterministic per (seed, index)."""

    kind: Literal["procedural"] = "procedural"
    per_category: int = Field(20, ge=1, description="Assets generated per category.")
    seed: int = 0
    colors: bool = Field(True, description="Random simple materials (vertex colours) per part.")
    style: Literal["blocks", "shaped", "curved"] = Field(
        "blocks", description="How pieces are built: 'blocks' (axis-aligned boxes and cylinders; ids proc-*), "
        "'shaped' (the same categories from angled capsules and rounded, tilted parts; ids shaped-*) or 'curved' "
        "(turned, revolved and bent parts, extruded profiles; ids curved-*): other constructions to train on or to "
        "measure generalisation with (docs/train.md).",
    )


class LocalSource(_Source):
    """A folder of glb/gltf/obj/ply/stl files; category from the sub-folder or a CSV/Parquet beside it."""

    kind: Literal["local"] = "local"
    path: str
    labels: str | None = Field(None, description="CSV/Parquet with columns file,category (relative to path).")


class ObjaverseSource(_Source):
    """Objaverse-1.0 objects selected by their LVIS annotations through the ``objaverse`` package."""

    kind: Literal["objaverse"] = "objaverse"
    per_category: int | None = Field(100, ge=1, description="At most this many per category (None: all).")
    cache_dir: str = Field("~/.objaverse", description="objaverse's cache (annotations and GLBs).")
    download_processes: int = Field(4, ge=1)
    seed: int = 0


Source = Annotated[ProceduralSource | LocalSource | ObjaverseSource, Field(discriminator="kind")]


class AssetsConfig(BaseModel):
    """Sources (inline or from a ``manifests/*.yaml`` recipe) and per-mesh limits."""

    model_config = ConfigDict(extra="forbid")

    recipe: str | None = Field(None, description="A selection recipe YAML holding a 'sources' list.")
    sources: list[Source] = Field(default_factory=lambda: [ProceduralSource()])
    max_faces: int = Field(MAX_FACES, ge=1, description="Meshes with more faces are rejected.")
    max_file_mb: float = Field(
        MAX_FILE_MB, gt=0, description="Files larger than this are rejected unread (asset and render stage)."
    )
    workers: int = Field(0, ge=0, description="0: process assets in this process; N: N Ray tasks at a time.")

    def resolve_recipe(self, config_dir: Path | None = None) -> "AssetsConfig":
        """Replace ``sources`` by the recipe's when a recipe is named (cwd first, then the config's folder)."""
        if self.recipe is None:
            return self
        path = Path(self.recipe)
        if not path.is_file() and config_dir is not None and (config_dir / path).is_file():
            path = config_dir / path
        if not path.is_file():
            raise ValueError(f"assets.recipe: file not found: {self.recipe}")
        data = yaml.safe_load(path.read_text()) or {}
        if not isinstance(data, dict) or "sources" not in data:
            raise ValueError(f"assets.recipe {path}: expected a mapping with a 'sources' list")
        sources = AssetsConfig.model_validate({"sources": data["sources"]}).sources
        return self.model_copy(update={"sources": sources, "recipe": str(path)})
