"""Train config validation, the DeepSpeed config builder and the CLI registration."""

import os

import pytest

from lrm_dist.cli import build_parser
from lrm_dist.config import ConfigError, load_config
from lrm_dist.train.config import TrainConfig
from lrm_dist.train.deepspeed_config import build_deepspeed_config, name_deepspeed_accelerator, resolve_train_precision


def test_deepspeed_config_per_device_and_stage():
    cfg = TrainConfig(micro_batch_size=4, grad_accum_steps=3, grad_clip=0.5, zero_stage=2)
    cpu = build_deepspeed_config(cfg, world_size=2, use_gpu=False)
    assert cpu["train_batch_size"] == 24 and cpu["train_micro_batch_size_per_gpu"] == 4
    assert cpu["gradient_accumulation_steps"] == 3 and cpu["gradient_clipping"] == 0.5
    assert cpu["bf16"] == {"enabled": False} and cpu["zero_optimization"]["stage"] == 2
    assert cpu["zero_optimization"]["overlap_comm"] is False
    gpu = build_deepspeed_config(cfg.model_copy(update={"zero_stage": 3}), world_size=8, use_gpu=True)
    assert gpu["torch_autocast"]["enabled"] and gpu["bf16"] == {"enabled": False} and gpu["train_batch_size"] == 96
    assert gpu["zero_optimization"]["stage"] == 3
    assert "optimizer" not in gpu and "scheduler" not in gpu  # torch AdamW + LambdaLR are passed in


def test_precision_resolution():
    assert resolve_train_precision(TrainConfig(), use_gpu=True) == "autocast_bf16"
    assert resolve_train_precision(TrainConfig(), use_gpu=False) == "fp32"
    assert resolve_train_precision(TrainConfig(precision="fp32"), use_gpu=True) == "fp32"
    with pytest.raises(ValueError, match="train.precision"):
        resolve_train_precision(TrainConfig(precision="bf16"), use_gpu=False)
    autocast = build_deepspeed_config(TrainConfig(precision="autocast_bf16"), 1, use_gpu=True)
    assert autocast["torch_autocast"] == {"enabled": True, "dtype": "bfloat16"} and autocast["bf16"]["enabled"] is False
    bf16 = build_deepspeed_config(TrainConfig(precision="bf16"), 1, use_gpu=True)
    assert bf16["bf16"] == {"enabled": True} and bf16["torch_autocast"]["enabled"] is False


def test_config_rejects_bad_values():
    with pytest.raises(ConfigError, match="zero_stage"):
        load_config(None, ["train.zero_stage=4"])
    with pytest.raises(ConfigError, match="patch_size"):
        load_config(None, ["train.sample.patch_size=300"])
    with pytest.raises(ConfigError, match="backend"):
        load_config(None, ["train.data.backend=hdf5"])
    cfg = load_config(None, ["train.max_steps=7", "train.num_workers=3"])
    assert (cfg.train.max_steps, cfg.train.num_workers, cfg.train.lr, cfg.train.betas) == (7, 3, 4e-4, (0.9, 0.95))


def test_cli_registers_train():
    args = build_parser().parse_args(["train", "cfg.yaml", "--set", "train.max_steps=2"])
    assert args.command == "train" and args.config == "cfg.yaml" and args.overrides == ["train.max_steps=2"]
    assert callable(args.func)


def test_train_device_follows_the_one_device_rule_against_the_cluster(monkeypatch):
    import ray

    from lrm_dist.train.stage import _use_gpu

    monkeypatch.setattr(ray, "cluster_resources", lambda: {"CPU": 2.0})
    assert not _use_gpu("auto") and not _use_gpu("cpu")
    with pytest.raises(ValueError, match=r"^train.device='cuda' but no CUDA device is visible in the Ray cluster"):
        _use_gpu("cuda")
    monkeypatch.setattr(ray, "cluster_resources", lambda: {"CPU": 16.0, "GPU": 2.0})
    assert _use_gpu("auto") and _use_gpu("cuda") and not _use_gpu("cpu")


def test_normal_maps_and_depth_layers_are_made_only_for_their_terms():
    from lrm_dist.train.config import TrainConfig

    plain = TrainConfig().sample
    assert plain.normal is False and plain.source_layers is False
    assert TrainConfig.model_validate({"loss": {"normal": 0.5}}).sample.normal is True
    assert TrainConfig.model_validate({"loss": {"normal": 0.5}, "sample": {"normal": False}}).sample.normal is False
    assert TrainConfig.model_validate({"loss": {"source_layers": 1.0}}).sample.source_layers is True
    assert TrainConfig.model_validate({"lift_warmup_steps": 10}).sample.source_layers is True


def test_deepspeed_is_told_its_accelerator_on_cpu_only(monkeypatch):
    monkeypatch.delenv("DS_ACCELERATOR", raising=False)
    name_deepspeed_accelerator(use_gpu=True)
    assert "DS_ACCELERATOR" not in os.environ  # CUDA: DeepSpeed's own detection, which finds it without a warning
    name_deepspeed_accelerator(use_gpu=False)
    assert os.environ["DS_ACCELERATOR"] == "cpu"
    monkeypatch.setenv("DS_ACCELERATOR", "xpu")
    name_deepspeed_accelerator(use_gpu=False)
    assert os.environ["DS_ACCELERATOR"] == "xpu"  # a user's choice wins


def test_field_sampling_auto_is_rows_on_cuda_and_grid_sample_on_cpu():
    assert TrainConfig().field_sampling == "auto"
    assert TrainConfig().exact_field_sampling(use_gpu=False)  # CPU: grid_sample's own backward, the faster there
    assert not TrainConfig().exact_field_sampling(use_gpu=True)
    assert not TrainConfig(field_sampling="rows").exact_field_sampling(use_gpu=False)
    assert TrainConfig(field_sampling="grid_sample").exact_field_sampling(use_gpu=True)


def test_compiled_blocks_resolve_by_device_and_zero_stage():
    auto = TrainConfig()
    assert auto.compile_blocks == "auto"
    assert not auto.compiles_blocks(use_gpu=False)  # CPU: always eager
    assert [TrainConfig(zero_stage=z).compiles_blocks(True) for z in range(4)] == [True, True, False, False]
    assert TrainConfig(zero_stage=3, compile_blocks=True).compiles_blocks(True)
    assert not TrainConfig(zero_stage=0, compile_blocks=False).compiles_blocks(True)
    cfg = load_config(None, ["train.compile_blocks=false"])
    assert cfg.train.compile_blocks is False
    with pytest.raises(ConfigError, match="compile_blocks"):
        load_config(None, ["train.compile_blocks=sometimes"])
