"""Checkpoint folders of a run: DeepSpeed's rank-named shards plus one trainer-state file per rank.

Layout (Ray Train merges the folders every rank reports into one; names never collide):
``ds/`` DeepSpeed's own files (``mp_rank_00_model_states.pt`` from rank 0, ``*zero_pp_rank_<r>_*`` from
rank r), ``trainer_state_rank<r>.pt`` (step, data position, RNG states of rank r) and
``lrm_config.json`` (the architecture, from rank 0) that the export reads.

Nothing here unpickles code: the trainer state is read with ``weights_only=True``, and since DeepSpeed's
loaders (``engine.load_checkpoint``, ``zero_to_fp32``) call ``torch.load(..., weights_only=False)``,
every ``.pt`` file of a folder is first verified with a weights-only load that allows only the few
classes DeepSpeed itself writes; a file that fails is refused with ``UnsafeCheckpoint``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch

from lrm_dist.log import quiet_prints

DS_TAG = "ds"
CONFIG_NAME = "lrm_config.json"


class UnsafeCheckpoint(ValueError):
    """A checkpoint file that a weights-only load refuses (it would run code, or is no torch file); names the file."""


def _deepspeed_types() -> list[type]:
    """The non-tensor classes DeepSpeed pickles into its checkpoints (ZeRO 1-3 optimizer states; ZeRO 0 has none).

    Found with ``torch.serialization.get_unsafe_globals_in_checkpoint`` on CPU checkpoints of stages 0-3
    (tests/train/test_checkpoint_safety.py keeps the list exact); ``fragment_address`` also comes from bf16.
    """
    from lrm_dist.train.deepspeed_config import name_deepspeed_accelerator

    name_deepspeed_accelerator(torch.cuda.is_available())
    from deepspeed.runtime.fp16.loss_scaler import LossScaler
    from deepspeed.runtime.zero.config import ZeroStageEnum
    from deepspeed.utils.tensor_fragment import fragment_address

    return [LossScaler, ZeroStageEnum, fragment_address]


def unsafe_globals(path: str | Path, allowed: Iterable[type] = ()) -> list[str]:
    """The globals a torch file's pickle would import beyond torch's weights-only set and ``allowed``.

    Read from the pickle's opcodes, never run; [] for a file that is no torch zip file.
    """
    names = {f"{t.__module__}.{t.__qualname__}" for t in allowed}
    try:
        found = torch.serialization.get_unsafe_globals_in_checkpoint(path)
    except Exception:  # not a torch zip file: no pickle to read
        return []
    return [g for g in found if g not in names]


def load_failure(path: str | Path, exc: Exception) -> str:
    """Why a weights-only ``torch.load`` of a weights file failed, in one line: the code it refuses, else the error."""
    bad = unsafe_globals(path)
    if bad:
        return f"refuses to load {', '.join(repr(g) for g in bad)}: only tensors are loaded"
    return _first_line(exc)


def _first_line(exc: Exception) -> str:
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0] if lines else 'no details'}"


def _refusal(path: Path, exc: Exception, allowed: list[type]) -> str:
    """One line naming ``path`` and the globals it would import (or the first line of the load error)."""
    bad = unsafe_globals(path, allowed)
    if bad:
        shown = ", ".join(repr(g) for g in bad)
        return f"checkpoint {path}: refuses to load {shown} (only tensors and DeepSpeed's own types are loaded)"
    return f"checkpoint {path}: not a loadable torch file ({_first_line(exc)})"


def safe_load(path: str | Path, mmap: bool = False) -> Any:
    """``torch.load`` that never runs code from the file: tensors, containers and DeepSpeed's own types only."""
    path = Path(path)
    allowed = _deepspeed_types()
    try:
        with torch.serialization.safe_globals(allowed):
            return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except Exception as exc:  # UnpicklingError for a refused global; zip/EOF/... errors for a damaged file
        raise UnsafeCheckpoint(_refusal(path, exc, allowed)) from None


def verify_folder(folder: str | Path) -> None:
    """Weights-only load (memory-mapped: tensors are not read) every ``.pt`` file under ``folder`` before
    DeepSpeed's own loaders unpickle them without restriction; raises ``UnsafeCheckpoint`` on the first bad one."""
    for path in sorted(Path(folder).rglob("*.pt")):
        safe_load(path, mmap=True)


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
    verify_folder(folder)
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
    state = safe_load(own)
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
    verify_folder(folder)
    if any(name.endswith("optim_states.pt") for name in os.listdir(ds_dir)):
        from lrm_dist.train.deepspeed_config import name_deepspeed_accelerator

        name_deepspeed_accelerator(torch.cuda.is_available())
        from deepspeed.utils.zero_to_fp32 import get_fp32_state_dict_from_zero_checkpoint

        with quiet_prints():  # its notes on each partition it reads, and a progress bar
            state = get_fp32_state_dict_from_zero_checkpoint(str(folder), tag=DS_TAG)
    else:
        model_file = ds_dir / "mp_rank_00_model_states.pt"
        if not model_file.is_file():
            raise FileNotFoundError(f"checkpoint {folder}: no {model_file.name}")
        state = safe_load(model_file)["module"]
    return {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
