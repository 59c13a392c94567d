"""Export a training checkpoint as a Hugging Face-layout model folder (``config.json`` + ``model.safetensors``)."""

from __future__ import annotations

import shutil
from pathlib import Path

import torch

from lrm_dist.log import get_logger
from lrm_dist.train.checkpoint import CONFIG_NAME, consolidated_state_dict

log = get_logger(__name__)


def export_checkpoint(checkpoint_dir: str | Path, out_dir: str | Path) -> Path:
    """Gather a merged Ray Train checkpoint's fp32 weights into an LRM and ``save_pretrained`` it.

    The config is bounded before the model is built (on the meta device), and every checkpoint file is
    verified weights-only before DeepSpeed's consolidation reads it (``consolidated_state_dict``).
    """
    from lrm_dist.model.config import validate_lrm_config
    from lrm_dist.model.lrm import LRM
    from lrm_dist.model.pretrained import load_into, read_config_json, save_pretrained

    checkpoint_dir = Path(checkpoint_dir)
    config_file = checkpoint_dir / CONFIG_NAME
    config = validate_lrm_config(read_config_json(config_file, f"checkpoint {checkpoint_dir}"), str(config_file))
    with torch.device("meta"):
        model = LRM(config)
    load_into(model, consolidated_state_dict(checkpoint_dir), source=str(checkpoint_dir))
    out = save_pretrained(model, out_dir)
    if (checkpoint_dir / "progress.json").is_file():  # the step behind these weights (the eval report's provenance)
        shutil.copyfile(checkpoint_dir / "progress.json", out / "training.json")
    log.info("exported %s -> %s", checkpoint_dir, out)
    return out
