"""Device and precision: one vocabulary for every stage's torch settings, and one resolver for each.

Every stage that runs torch names its settings the same way, with the same values:

* ``<stage>.device``: ``Device`` = ``auto`` | ``cpu`` | ``cuda`` (``train``, ``upscale``, ``serve``);
  ``auto`` is CUDA when CUDA is available (to the process, or, for stages that place Ray workers, in
  the Ray cluster), else CPU. Eval has no device key: its actors use a GPU when
  ``eval.actors.num_gpus`` gives them one. Which GPU a process sees is Ray's (or
  ``CUDA_VISIBLE_DEVICES``'s) business, so there is no ``cuda:N``.
* ``<stage>.precision``: ``Precision`` = ``auto`` | ``fp32`` | ``bf16`` | ``fp16`` (``serve``,
  ``eval.actors``, ``upscale``; ``train`` a subset plus one value, below): the compute dtype on CUDA;
  ``auto`` is bf16 on CUDA, fp32 on CPU.
* ``train.precision`` is ``TrainPrecision``: ``auto`` | ``fp32`` | ``bf16`` | ``autocast_bf16``.
  Training has two ways to compute in bf16 that are really different things: ``bf16`` keeps the
  weights and optimizer state in bf16 (DeepSpeed's bf16 mode), ``autocast_bf16`` keeps fp32 weights
  and runs the matmuls under bf16 autocast (OpenLRM's recipe; the faster whole step measured,
  docs/train.md), and train's ``auto`` is autocast_bf16 on CUDA (bf16 compute, as everywhere), fp32 on
  CPU. There is no fp16 training (it would need loss scaling).

Render's ``render.cycles_device`` (``auto`` | ``CPU`` | ``CUDA`` | ``OPTIX``) is another thing: the
Cycles compute backend Blender renders with, not a torch device.

This module imports nothing heavy (configs import it); torch is imported by the resolvers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal, get_args

if TYPE_CHECKING:
    import torch

Device = Literal["auto", "cpu", "cuda"]
Precision = Literal["auto", "fp32", "bf16", "fp16"]
TrainPrecision = Literal["auto", "fp32", "bf16", "autocast_bf16"]

DEVICES: tuple[str, ...] = get_args(Device)
PRECISIONS: tuple[str, ...] = get_args(Precision)
TRAIN_ONLY_PRECISIONS = ("autocast_bf16",)
"""Precision values only training has (see the module doc)."""

DEVICE_HELP = "'auto': CUDA when available, else CPU; 'cpu'; 'cuda'."
PRECISION_HELP = "Compute dtype: 'fp32', 'bf16', 'fp16'; 'auto': bf16 on CUDA, fp32 on CPU."


def device_error(setting: str, where: str = "to this process") -> str:
    """The one wording for a ``cuda`` device setting without CUDA."""
    return f"{setting}='cuda' but no CUDA device is visible {where}; set {setting} to 'auto' or 'cpu'"


def resolve_device_type(name: str = "auto", setting: str = "device", cuda_available: bool | None = None,
                        where: str = "to this process") -> str:
    """A ``Device`` value -> 'cuda' or 'cpu': 'auto' is CUDA when available, else CPU; 'cuda' without CUDA
    raises ``ValueError`` (``device_error``). ``cuda_available`` None asks torch; a stage placing Ray
    workers passes whether its workers will get a GPU (and ``where``), and torch is not imported."""
    if name not in DEVICES:
        raise ValueError(f"{setting}={name!r}: expected one of {', '.join(DEVICES)}")
    if cuda_available is None:
        import torch

        cuda_available = torch.cuda.is_available()
    if name == "cuda" and not cuda_available:
        raise ValueError(device_error(setting, where))
    return "cuda" if name != "cpu" and cuda_available else "cpu"


def resolve_device(name: str = "auto", setting: str = "device", cuda_available: bool | None = None,
                   where: str = "to this process") -> torch.device:
    """``resolve_device_type`` as a ``torch.device``."""
    import torch

    return torch.device(resolve_device_type(name, setting, cuda_available, where))


def resolve_precision(name: str, cuda: bool, setting: str = "precision") -> str:
    """A ``Precision`` value -> the concrete one: 'auto' is 'bf16' on CUDA, 'fp32' on CPU; others as given."""
    if name not in PRECISIONS:
        raise ValueError(f"{setting}={name!r}: expected one of {', '.join(PRECISIONS)}")
    if name == "auto":
        return "bf16" if cuda else "fp32"
    return name


def precision_dtype(name: str, device: torch.device | str, setting: str = "precision") -> torch.dtype:
    """A ``Precision`` value on a device -> its torch dtype ('auto': bf16 on CUDA, fp32 on CPU)."""
    import torch

    kind = device.type if isinstance(device, torch.device) else torch.device(device).type
    resolved = resolve_precision(name, kind == "cuda", setting)
    return {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[resolved]

