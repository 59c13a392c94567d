"""Pretrained LRMs in the Hugging Face layout: ``config.json`` + ``model.safetensors``, as OpenLRM publishes.

``from_pretrained`` takes a local folder or a hub id (``zxhezexin/openlrm-obj-small-1.1``, resolved by
``huggingface_hub.snapshot_download`` when online, from its cache otherwise) and loads the weights
with ``strict=True``; ``save_pretrained`` writes the same layout, so exported fine-tunes load in
OpenLRM and here alike. Loading never runs code from a file and allocates nothing before the
config is within bounds and the weight file's tensor shapes (its header only) match the model it
implies; a bad file is refused with ``ModelFileError``, one line naming it.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import torch

from lrm_dist.log import get_logger
from lrm_dist.model.config import LRMConfig, ModelConfig, validate_lrm_config
from lrm_dist.model.lrm import LRM

log = get_logger(__name__)

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
LEGACY_WEIGHTS_NAME = "pytorch_model.bin"


class ModelFileError(ValueError):
    """A pretrained folder's config or weight file that cannot be used; the message is one line naming the file."""


def _first_line(exc: Exception) -> str:
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__


def resolve_pretrained(path_or_hub_id: str | Path, revision: str | None = None, cache_dir: str | None = None) -> Path:
    """The local folder holding ``config.json`` + weights: the path itself, a cached copy of an object-store
    folder (``s3://...``), or a hub snapshot."""
    from lrm_dist.storage import is_url, local_folder

    if is_url(path_or_hub_id):
        return Path(local_folder(str(path_or_hub_id)))
    path = Path(path_or_hub_id).expanduser()
    if path.is_dir():
        return path
    name = str(path_or_hub_id)
    if path.exists() or name.count("/") != 1 or name.startswith((".", "/", "~")):
        raise FileNotFoundError(f"pretrained model {name!r}: not a folder and not a hub id of the form owner/name")
    from huggingface_hub import snapshot_download

    patterns = [CONFIG_NAME, WEIGHTS_NAME, LEGACY_WEIGHTS_NAME]
    try:
        return Path(snapshot_download(name, revision=revision, cache_dir=cache_dir, allow_patterns=patterns))
    except Exception as exc:  # offline, unknown repo, gated: try the local cache before giving up
        try:
            return Path(snapshot_download(
                name, revision=revision, cache_dir=cache_dir, allow_patterns=patterns, local_files_only=True
            ))
        except Exception:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise FileNotFoundError(f"pretrained model {name!r}: cannot download it and it is not cached ({first})") from None


def read_config_json(path: Path, owner: str) -> dict:
    """The JSON object in ``path`` (a model's ``config.json``, a checkpoint's ``lrm_config.json``); one-line
    errors naming it: FileNotFoundError ("<owner>: no <file name>"), ModelFileError (not JSON, or not an object)."""
    if not path.is_file():
        raise FileNotFoundError(f"{owner}: no {path.name}")
    try:
        raw = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelFileError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(raw, dict):
        raise ModelFileError(f"{path}: holds a {type(raw).__name__}, not a JSON object")
    return raw


def load_config(folder: str | Path) -> LRMConfig:
    """Read ``config.json`` (bounded sizes); keys this architecture does not know are ignored with a warning."""
    path = Path(folder) / CONFIG_NAME
    raw = read_config_json(path, f"pretrained model folder {folder}")
    known = {k: v for k, v in raw.items() if k in LRMConfig.model_fields}
    ignored = sorted(set(raw) - set(known))
    if ignored:
        log.warning("%s: ignoring unknown keys %s", path, ignored)
    try:
        return validate_lrm_config(known, str(path))
    except ValueError as exc:
        raise ModelFileError(str(exc)) from None


def weights_file(folder: str | Path) -> Path:
    """The weight file of a pretrained folder: ``model.safetensors``, else a legacy ``pytorch_model.bin``."""
    folder = Path(folder)
    for name in (WEIGHTS_NAME, LEGACY_WEIGHTS_NAME):
        if (folder / name).is_file():
            return folder / name
    raise FileNotFoundError(f"pretrained model folder {folder}: no {WEIGHTS_NAME} or {LEGACY_WEIGHTS_NAME}")


def _read_legacy(path: Path, mmap: bool) -> dict[str, torch.Tensor]:
    """A weights-only ``torch.load`` of a ``.bin`` (memory-mapped when asked and the file is a zip: nothing read)."""
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap and zipfile.is_zipfile(path))
    except Exception as exc:  # UnpicklingError for pickled code, zip/EOF errors for damaged files
        from lrm_dist.train.checkpoint import load_failure

        raise ModelFileError(
            f"weights file {path} is not a tensor-only torch file ({load_failure(path, exc)})"
        ) from None
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ModelFileError(f"weights file {path} holds no tensor state dict (got {type(obj).__name__})")
    return obj


def weight_shapes(path: str | Path) -> dict[str, tuple[int, ...]]:
    """Tensor shapes of a weight file without reading its tensors (safetensors header, or a memory-mapped .bin)."""
    path = Path(path)
    if path.suffix != ".safetensors":
        return {k: tuple(v.shape) for k, v in _read_legacy(path, mmap=True).items()}
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            return {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
    except Exception as exc:  # SafetensorError / OSError for damaged or foreign files
        raise ModelFileError(f"weights file {path} is not a readable safetensors file ({_first_line(exc)})") from None


def read_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of a ``.safetensors`` or tensor-only ``.bin`` weight file (never unpickles code)."""
    path = Path(path)
    if path.suffix != ".safetensors":
        return _read_legacy(path, mmap=False)
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except Exception as exc:
        raise ModelFileError(f"weights file {path} is not a readable safetensors file ({_first_line(exc)})") from None


def check_shapes(model: LRM, shapes: dict[str, tuple[int, ...]], source: str = "state dict") -> None:
    """Refuse (one line) a key set or tensor shapes that differ from ``model``'s, before any tensor is read."""
    ours = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    missing = sorted(set(ours) - set(shapes))
    unexpected = sorted(set(shapes) - set(ours))
    wrong = sorted(k for k in set(ours) & set(shapes) if ours[k] != tuple(shapes[k]))
    if missing or unexpected or wrong:
        parts = []
        for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong)):
            if keys:
                parts.append(f"{len(keys)} {label} (e.g. {', '.join(keys[:3])})")
        raise ModelFileError(f"{source} does not match the LRM architecture: {'; '.join(parts)}")


def load_into(model: LRM, state_dict: dict[str, torch.Tensor], source: str = "state dict") -> None:
    """Strictly load ``state_dict`` (assigning tensors, so a meta-device model needs no allocation)."""
    check_shapes(model, {k: tuple(v.shape) for k, v in state_dict.items()}, source)
    model.load_state_dict(state_dict, strict=True, assign=True)


def from_pretrained(
    path_or_hub_id: str | Path, revision: str | None = None, device: str | torch.device = "cpu",
    dtype: torch.dtype | None = None, cache_dir: str | None = None,
) -> LRM:
    """Load an LRM from a HF-layout folder or hub id (OpenLRM's released checkpoints included)."""
    folder = resolve_pretrained(path_or_hub_id, revision, cache_dir)
    config = load_config(folder)
    path = weights_file(folder)
    try:
        with torch.device("meta"):
            model = LRM(config)
    except ValueError as exc:  # sizes that do not fit together (heads, triplane sides, encoder width)
        raise ModelFileError(f"{Path(folder) / CONFIG_NAME}: {exc}") from None
    check_shapes(model, weight_shapes(path), source=str(path))
    load_into(model, read_weights(path), source=str(path))
    log.info("loaded LRM from %s (%.1fM parameters)", folder, sum(p.numel() for p in model.parameters()) / 1e6)
    return model.to(device=device, dtype=dtype)


def save_pretrained(model: LRM, out_dir: str | Path) -> Path:
    """Write ``config.json`` + ``model.safetensors`` (float tensors kept in their dtype) to ``out_dir``."""
    from safetensors.torch import save_file

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / CONFIG_NAME).write_text(json.dumps(model.config.hf_dict(), indent=2) + "\n")
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    save_file(state, str(out / WEIGHTS_NAME), metadata={"format": "pt"})
    return out


def build_model(cfg: ModelConfig, device: str | torch.device = "cpu") -> LRM:
    """The model a config names: its pretrained checkpoint, else a freshly initialised ``size``."""
    if cfg.pretrained:
        return from_pretrained(cfg.pretrained, revision=cfg.revision, device=device)
    log.warning("model.pretrained is not set: building a randomly initialised %r LRM", cfg.size)
    return LRM(cfg.arch()).to(device)
