"""Checkpoint folders of a run: DeepSpeed's rank-named shards plus one trainer-state file per rank.

Layout (Ray Train merges the folders every rank reports into one; names never collide):
``ds/`` DeepSpeed's own files (``mp_rank_00_model_states.pt`` from rank 0, ``*zero_pp_rank_<r>_*`` from
rank r), ``trainer_state_rank<r>.pt`` (step, data position, RNG states of rank r) and
``lrm_config.json`` (the architecture, from rank 0) that the export reads.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

DS_TAG = "ds"
CONFIG_NAME = "lrm_config.json"


def state_name(rank: int) -> str:
    return f"trainer_state_rank{rank:05d}.pt"


def _node_id() -> str | None:
    try:
        import ray

        return ray.get_runtime_context().get_node_id() if ray.is_initialized() else None
    except Exception:  # not inside Ray
        return None


def save_checkpoint(engine: Any, folder: str | Path, rank: int, state: dict[str, Any], lrm_config: dict) -> None:
    """Collective: every rank writes its DeepSpeed shard and its trainer state into ``folder`` (rank-local)."""
    folder = Path(folder)
    engine.save_checkpoint(str(folder), tag=DS_TAG, client_state={"step": state["step"]})
    state = dict(state, torch_rng=torch.get_rng_state(), node_id=_node_id())
    if torch.cuda.is_available():
        state["cuda_rng"] = torch.cuda.get_rng_state()
    torch.save(state, folder / state_name(rank))
    if rank == 0:
        (folder / CONFIG_NAME).write_text(json.dumps(lrm_config, indent=2) + "\n")


def load_checkpoint(engine: Any, folder: str | Path, rank: int) -> dict[str, Any]:
    """Restore model, optimizer and scheduler into ``engine`` and return this rank's trainer state."""
    folder = Path(folder)
    path, client = engine.load_checkpoint(
        str(folder), tag=DS_TAG, load_optimizer_states=True, load_lr_scheduler_states=True
    )
    if path is None:
        raise FileNotFoundError(f"checkpoint {folder}: no DeepSpeed checkpoint under tag {DS_TAG!r}")
    own = folder / state_name(rank)
    if not own.is_file():
        raise FileNotFoundError(
            f"checkpoint {folder}: no {own.name}; resuming needs the same number of workers as the run that saved it"
        )
    state = torch.load(own, map_location="cpu", weights_only=False)
    if int(client.get("step", -1)) != int(state["step"]):
        raise ValueError(f"checkpoint {folder}: DeepSpeed step {client.get('step')} != trainer step {state['step']}")
    torch.set_rng_state(state.pop("torch_rng"))
    cuda_rng = state.pop("cuda_rng", None)
    if cuda_rng is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state(cuda_rng)
    return state


def consolidated_state_dict(folder: str | Path) -> dict[str, torch.Tensor]:
    """Full fp32 model weights from a merged checkpoint folder (ZeRO partitions gathered when present)."""
    folder = Path(folder)
    ds_dir = folder / DS_TAG
    if not ds_dir.is_dir():
        raise FileNotFoundError(f"checkpoint {folder}: no {DS_TAG}/ folder")
    if any(name.endswith("optim_states.pt") for name in os.listdir(ds_dir)):
        from deepspeed.utils.zero_to_fp32 import get_fp32_state_dict_from_zero_checkpoint

        state = get_fp32_state_dict_from_zero_checkpoint(str(folder), tag=DS_TAG)
    else:
        model_file = ds_dir / "mp_rank_00_model_states.pt"
        if not model_file.is_file():
            raise FileNotFoundError(f"checkpoint {folder}: no {model_file.name}")
        state = torch.load(model_file, map_location="cpu", weights_only=False)["module"]
    return {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
