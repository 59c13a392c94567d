"""The one config system: typed pydantic models, loaded from YAML, overridden with ``--set a.b=v``.

Each stage's config lives next to the code it configures (``lrm_dist/<stage>/config.py``, importing
nothing heavy); ``PipelineConfig`` composes them. Errors name the bad key and value.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from lrm_dist.assets.config import AssetsConfig
from lrm_dist.eval.config import EvalConfig
from lrm_dist.layout import RunLayout
from lrm_dist.model.config import ModelConfig
from lrm_dist.ray_utils import RayConfig
from lrm_dist.render.config import RenderConfig
from lrm_dist.serve.config import ServeConfig
from lrm_dist.shards.config import ShardsConfig
from lrm_dist.storage import StorageConfig, join
from lrm_dist.train.config import TrainConfig
from lrm_dist.upscale.config import UpscaleConfig


DEFAULT_CONFIG = Path(__file__).resolve().parent / "configs" / "default.yaml"
"""The one default job (the README demo; ``configs/default.yaml`` in the repository): what the CLI
runs when no config file is named."""


RENAMED_KEYS: dict[str, str] = {
    "serve.dtype": "serve.precision",
    "eval.actors.dtype": "eval.actors.precision",
    "render.device": "render.cycles_device",
    "upscale.num_actors": "upscale.actors.count",
    "upscale.cpus_per_actor": "upscale.actors.num_cpus",
    "upscale.gpus_per_actor": "upscale.actors.num_gpus",
}
"""Keys renamed to the shared vocabulary (``lrm_dist.device``, the actor words): an old key's error names
the new one."""


class ConfigError(ValueError):
    """A config file or override that does not validate; the message names key and value."""


class PipelineConfig(BaseModel):
    """Everything one job needs; every stage reads its own section plus ``workdir``."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    workdir: str = Field(
        "runs/default", min_length=1, pattern=r"\S", description="Local path or fsspec URL where every stage writes."
    )
    allow_failed: bool = Field(
        False, description="Exit 0 even when some items (assets, renders, eval samples) failed; their rows say why.",
    )
    seed: int = 0
    storage: StorageConfig = Field(default_factory=StorageConfig)
    ray: RayConfig = Field(default_factory=RayConfig)
    assets: AssetsConfig = Field(default_factory=AssetsConfig)
    render: RenderConfig = Field(default_factory=RenderConfig)
    upscale: UpscaleConfig = Field(default_factory=UpscaleConfig)
    shards: ShardsConfig = Field(default_factory=ShardsConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)
    serve: ServeConfig = Field(default_factory=ServeConfig)

    def layout(self) -> RunLayout:
        """Every path this job's stages read or write (``lrm_dist.layout.RunLayout``), overrides applied."""
        return RunLayout.from_config(self)

    def stage_dir(self, stage: str) -> str:
        """``<workdir>/<stage>`` (for benchmarks and tests; the stages use ``layout()``)."""
        return join(self.workdir, stage)


def _set_dotted(tree: dict[str, Any], dotted: str, value: Any) -> None:
    keys = dotted.split(".")
    node = tree
    for key in keys[:-1]:
        child = node.get(key)
        if child is None:
            child = node[key] = {}
        if not isinstance(child, dict):
            raise ConfigError(f"override {dotted!r}: {key!r} is a value, not a section")
        node = child
    node[keys[-1]] = value


def parse_overrides(overrides: list[str]) -> dict[str, Any]:
    """Turn ``["render.views=8", "workdir=/tmp/x"]`` into a nested dict (values parsed as YAML)."""
    tree: dict[str, Any] = {}
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"override {item!r} is not of the form key.path=value")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError as exc:
            raise ConfigError(f"override {item!r}: the value is not valid YAML ({_one_line(exc)})") from None
        _set_dotted(tree, key.strip(), value)
    return tree


def _one_line(exc: Exception) -> str:
    """An error as one line; a YAML error as its problem and position."""
    mark, problem = getattr(exc, "problem_mark", None), getattr(exc, "problem", None)
    if mark is not None and problem:
        return f"{problem} at line {mark.line + 1}, column {mark.column + 1}"
    return " ".join(str(exc).split())


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _format_error(err: ValidationError, origin: str) -> str:
    lines = [f"invalid config ({origin}):"]
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"]) or "<root>"
        value = e.get("input")
        shown = repr(value) if not isinstance(value, dict) else "{...}"
        hint = f" (renamed to {RENAMED_KEYS[key]})" if e["type"] == "extra_forbidden" and key in RENAMED_KEYS else ""
        lines.append(f"  {key} = {shown}: {e['msg']}{hint}")
    return "\n".join(lines)


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> PipelineConfig:
    """Load a pipeline config from YAML (or the defaults when ``path`` is None) plus overrides."""
    data: dict[str, Any] = {}
    origin = "defaults"
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"config file not found: {p}")
        try:
            loaded = yaml.safe_load(p.read_text(encoding="utf-8"))
        except UnicodeDecodeError as exc:
            raise ConfigError(f"config file {p} is not UTF-8 text (byte {exc.start})") from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"config file {p} is not valid YAML: {_one_line(exc)}") from None
        except OSError as exc:
            raise ConfigError(f"config file {p} cannot be read: {exc.strerror or exc}") from None
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"config file {p} must hold a mapping, got {type(loaded).__name__}")
        data = loaded or {}
        origin = str(p)
    if overrides:
        data = _merge(data, parse_overrides(overrides))
        origin += " + overrides"
    try:
        cfg = PipelineConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_format_error(exc, origin)) from None
    try:
        assets = cfg.assets.resolve_recipe(Path(path).parent if path is not None else None)
    except ValidationError as exc:
        raise ConfigError(_format_error(exc, f"assets.recipe {cfg.assets.recipe}")) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"assets.recipe {cfg.assets.recipe}: not UTF-8 text (byte {exc.start})") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"assets.recipe {cfg.assets.recipe}: not valid YAML ({_one_line(exc)})") from None
    except ValueError as exc:
        raise ConfigError(_one_line(exc)) from None
    from lrm_dist.storage import configure_from

    configure_from(cfg)  # an object-store workdir's options, for this process and the Ray workers it starts
    return cfg.model_copy(update={"assets": assets})


def describe_config(cfg: BaseModel, prefix: str = "") -> list[tuple[str, Any, str]]:
    """Every leaf key of a config as (dotted key, resolved value, the field's description), in field order."""
    rows: list[tuple[str, Any, str]] = []
    for name, field in type(cfg).model_fields.items():
        value, key = getattr(cfg, name), f"{prefix}{name}"
        if isinstance(value, BaseModel):
            rows.extend(describe_config(value, f"{key}."))
        else:
            if isinstance(value, list):  # e.g. assets.sources: a list of typed sections
                value = [v.model_dump(mode="json") if isinstance(v, BaseModel) else v for v in value]
            rows.append((key, value, field.description or ""))
    return rows


def dump_config(cfg: BaseModel) -> str:
    """Serialise a config back to YAML (what a job records next to its outputs)."""
    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)
