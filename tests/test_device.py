"""One vocabulary for device and precision across stages (lrm_dist.device), its resolvers, renamed keys."""

from __future__ import annotations

from typing import get_args

import pytest
import torch
from pydantic import BaseModel

from lrm_dist.config import RENAMED_KEYS, ConfigError, PipelineConfig, load_config
from lrm_dist.device import (
    DEVICES,
    PRECISIONS,
    TRAIN_ONLY_PRECISIONS,
    precision_dtype,
    resolve_device,
    resolve_device_type,
    resolve_precision,
)


def _fields(model: type[BaseModel], prefix: str = ""):
    """(dotted key, annotation) of every leaf field of a config model, sections recursed into."""
    for name, field in model.model_fields.items():
        ann = field.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            yield from _fields(ann, f"{prefix}{name}.")
        else:
            yield f"{prefix}{name}", ann


FIELDS = dict(_fields(PipelineConfig))


def test_every_stage_names_device_and_precision_the_same_way():
    devices = {k: a for k, a in FIELDS.items() if k.rsplit(".", 1)[-1] == "device"}
    precisions = {k: a for k, a in FIELDS.items() if k.rsplit(".", 1)[-1] == "precision"}
    assert set(devices) == {"train.device", "upscale.device", "serve.device"}
    assert set(precisions) == {"train.precision", "upscale.precision", "serve.precision", "eval.actors.precision"}
    for key, ann in devices.items():
        assert get_args(ann) == DEVICES, key
    for key, ann in precisions.items():
        values = get_args(ann)
        if key == "train.precision":  # the shared words, less fp16, plus training's own autocast_bf16
            assert set(values) == set(PRECISIONS) - {"fp16"} | set(TRAIN_ONLY_PRECISIONS)
        else:
            assert values == PRECISIONS, key
    # no other spelling of the same settings anywhere
    assert not [k for k in FIELDS if k.rsplit(".", 1)[-1] in ("dtype", "torch_dtype", "compute_dtype")]
    assert "render.cycles_device" in FIELDS and get_args(FIELDS["render.cycles_device"]) == ("auto", "CPU", "CUDA", "OPTIX")


def test_auto_resolves_to_cpu_and_fp32_without_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto", "serve.device") == torch.device("cpu")
    assert resolve_device("cpu") == torch.device("cpu")
    assert precision_dtype("auto", torch.device("cpu")) == torch.float32
    assert precision_dtype("bf16", "cpu") == torch.bfloat16 and precision_dtype("fp16", "cpu") == torch.float16
    assert resolve_precision("auto", cuda=False) == "fp32" and resolve_precision("auto", cuda=True) == "bf16"
    assert resolve_device("auto", cuda_available=True) == torch.device("cuda")  # e.g. a Ray cluster with GPUs
    assert resolve_device("cpu", cuda_available=True) == torch.device("cpu")
    assert resolve_device_type("auto", cuda_available=False) == "cpu"
    with pytest.raises(ValueError, match=r"^upscale\.device='cuda' but no CUDA device is visible to the upscale actors"):
        resolve_device_type("cuda", "upscale.device", cuda_available=False, where="to the upscale actors")
    with pytest.raises(ValueError, match=r"^serve\.device='cuda' but no CUDA device is visible to this process; "
                                         r"set serve\.device to 'auto' or 'cpu'$"):
        resolve_device("cuda", "serve.device")
    with pytest.raises(ValueError, match="serve.precision='float32': expected one of auto, fp32, bf16, fp16"):
        precision_dtype("float32", "cpu", "serve.precision")


class _Planes(torch.nn.Linear):
    def forward_planes(self, images, cameras):  # what a Reconstructor wraps
        raise NotImplementedError


def test_the_reconstructor_takes_the_shared_words(monkeypatch):
    from lrm_dist.reconstruct import Reconstructor

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert Reconstructor(_Planes(1, 1)).dtype == torch.float32
    assert Reconstructor(_Planes(1, 1), precision="bf16").dtype == torch.bfloat16
    with pytest.raises(ValueError, match=r"^eval\.actors\.device='cuda' but no CUDA device"):
        Reconstructor(_Planes(1, 1), device="cuda", setting="eval.actors")


@pytest.mark.parametrize("old, new", sorted(RENAMED_KEYS.items()))
def test_an_old_key_is_one_line_naming_the_new_one(old, new):
    with pytest.raises(ConfigError) as err:
        load_config(overrides=[f"{old}=1"])
    lines = str(err.value).splitlines()
    assert len(lines) == 2 and lines[1].strip().startswith(f"{old} = 1: Extra inputs are not permitted")
    assert lines[1].endswith(f"(renamed to {new})")
    assert new in FIELDS  # the new key exists


def test_new_keys_load_and_precision_is_not_hashed_by_eval():
    from lrm_dist.eval.stage import eval_hash, resolved_settings

    cfg = load_config(overrides=["serve.precision=fp32", "serve.device=cpu", "eval.actors.precision=bf16",
                                 "upscale.precision=auto", "render.cycles_device=CPU", "train.precision=autocast_bf16"])
    assert (cfg.serve.precision, cfg.eval.actors.precision, cfg.render.cycles_device) == ("fp32", "bf16", "CPU")
    assert eval_hash("d", resolved_settings(cfg)) == eval_hash("d", resolved_settings(load_config()))
