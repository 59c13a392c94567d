"""Pretrained LRMs in the Hugging Face layout: ``config.json`` + ``model.safetensors``, as OpenLRM publishes.

``from_pretrained`` takes a local folder or a hub id (``zxhezexin/openlrm-obj-small-1.1``, resolved by
``huggingface_hub.snapshot_download`` when online, from its cache otherwise) and loads the weights
with ``strict=True``; ``save_pretrained`` writes the same layout, so exported fine-tunes load in
OpenLRM and here alike.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from lrm_dist.log import get_logger
from lrm_dist.model.config import LRMConfig, ModelConfig
from lrm_dist.model.lrm import LRM

log = get_logger(__name__)

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
LEGACY_WEIGHTS_NAME = "pytorch_model.bin"


def resolve_pretrained(path_or_hub_id: str | Path, revision: str | None = None, cache_dir: str | None = None) -> Path:
    """The local folder holding ``config.json`` + weights: the path itself, or a hub snapshot."""
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


def load_config(folder: str | Path) -> LRMConfig:
    """Read ``config.json``; keys this architecture does not know are ignored with a warning."""
    path = Path(folder) / CONFIG_NAME
    if not path.is_file():
        raise FileNotFoundError(f"pretrained model folder {folder}: no {CONFIG_NAME}")
    try:
        raw = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from None
    known = {k: v for k, v in raw.items() if k in LRMConfig.model_fields}
    ignored = sorted(set(raw) - set(known))
    if ignored:
        log.warning("%s: ignoring unknown keys %s", path, ignored)
    return LRMConfig.model_validate(known)


def load_state_dict(folder: str | Path) -> dict[str, torch.Tensor]:
    """The weights of a pretrained folder (``model.safetensors``, else a legacy ``pytorch_model.bin``)."""
    folder = Path(folder)
    if (folder / WEIGHTS_NAME).is_file():
        from safetensors.torch import load_file

        return load_file(str(folder / WEIGHTS_NAME))
    if (folder / LEGACY_WEIGHTS_NAME).is_file():
        return torch.load(folder / LEGACY_WEIGHTS_NAME, map_location="cpu", weights_only=True)
    raise FileNotFoundError(f"pretrained model folder {folder}: no {WEIGHTS_NAME} or {LEGACY_WEIGHTS_NAME}")


def load_into(model: LRM, state_dict: dict[str, torch.Tensor], source: str = "state dict") -> None:
    """Strictly load ``state_dict`` (assigning tensors, so a meta-device model needs no allocation)."""
    ours = model.state_dict()
    missing = sorted(set(ours) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(ours))
    wrong = sorted(k for k in set(ours) & set(state_dict) if tuple(ours[k].shape) != tuple(state_dict[k].shape))
    if missing or unexpected or wrong:
        parts = []
        for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong)):
            if keys:
                parts.append(f"{len(keys)} {label} (e.g. {', '.join(keys[:3])})")
        raise ValueError(f"{source} does not match the LRM architecture: {'; '.join(parts)}")
    model.load_state_dict(state_dict, strict=True, assign=True)


def from_pretrained(
    path_or_hub_id: str | Path, revision: str | None = None, device: str | torch.device = "cpu",
    dtype: torch.dtype | None = None, cache_dir: str | None = None,
) -> LRM:
    """Load an LRM from a HF-layout folder or hub id (OpenLRM's released checkpoints included)."""
    folder = resolve_pretrained(path_or_hub_id, revision, cache_dir)
    config = load_config(folder)
    with torch.device("meta"):
        model = LRM(config)
    load_into(model, load_state_dict(folder), source=str(folder))
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
