"""Weight and config files from outside: bounded sizes, shapes checked from the header, no code unpickled.

Garbage, pickled payloads and absurd configs given to the LRM loader, the Real-ESRGAN loader and the
perceptual loss are refused with one line naming the file; ``lrm-dist infer`` ends without a traceback.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from lrm_dist.config import ConfigError, load_config
from lrm_dist.model.config import SIZES, LRMConfig, ModelConfig, validate_lrm_config
from lrm_dist.model.lrm import LRM
from lrm_dist.model.pretrained import ModelFileError, from_pretrained, save_pretrained, weight_shapes
from lrm_dist.train.perceptual import PerceptualLoss, PerceptualWeightsError
from lrm_dist.upscale.weights import WeightsError, read_state_dict
from tests.hostile_pickle import Payload

REPO = Path(__file__).resolve().parents[2]
GARBAGE = bytes(range(256)) * 64


def _pickle_bomb(path: Path, marker: Path) -> Path:
    torch.save({"weight": torch.zeros(2), "extra": Payload(marker)}, path)
    return path


def _one_line_naming(exc: pytest.ExceptionInfo, path: Path) -> str:
    message = str(exc.value)
    assert "\n" not in message and str(path) in message, message
    return message


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    return save_pretrained(LRM(SIZES["tiny"]), tmp_path_factory.mktemp("tiny") / "model")


def _copy_config(src: Path, dst: Path, **changes) -> Path:
    dst.mkdir(parents=True)
    cfg = json.loads((src / "config.json").read_text()) | changes
    (dst / "config.json").write_text(json.dumps(cfg))
    return dst


@pytest.mark.parametrize("field,limit", [
    ("transformer_layers", 64), ("transformer_dim", 4096), ("transformer_heads", 64), ("camera_embed_dim", 4096),
    ("triplane_low_res", 128), ("triplane_high_res", 256), ("triplane_dim", 512), ("encoder_feat_dim", 4096),
    ("rendering_samples_per_ray", 1024), ("source_size", 1024),
])
def test_sizes_are_bounded_with_one_line_naming_field_and_limit(field: str, limit: int):
    validate_lrm_config({field: limit}, "x")  # the limit itself is allowed
    with pytest.raises(ValueError) as exc:
        validate_lrm_config({field: 10**9}, "origin.json")
    assert str(exc.value) == f"origin.json: {field} = 1000000000: Input should be less than or equal to {limit}"


def test_released_sizes_are_well_inside_the_bounds():
    for field in ("transformer_layers", "transformer_dim", "triplane_low_res", "triplane_dim"):
        limit = next(m.le for m in LRMConfig.model_fields[field].metadata if hasattr(m, "le"))
        assert max(getattr(cfg, field) for cfg in SIZES.values()) * 4 <= limit, field


def test_architecture_overrides_are_refused_when_the_config_loads():
    with pytest.raises(ConfigError) as exc:
        load_config(None, ["model.architecture.transformer_layers=1000000000"])
    expected = "model.architecture: transformer_layers = 1000000000: Input should be less than or equal to 64"
    assert expected in str(exc.value)
    with pytest.raises(ValueError, match="transformer_dim = 1000000000"):
        ModelConfig(architecture={"transformer_dim": 10**9})
    assert ModelConfig(architecture={"transformer_layers": 3}).arch().transformer_layers == 3


def test_hostile_config_json_is_refused_before_building(tiny_dir, tmp_path):
    folder = _copy_config(tiny_dir, tmp_path / "m", transformer_layers=10**9)
    (folder / "model.safetensors").write_bytes((tiny_dir / "model.safetensors").read_bytes())
    with pytest.raises(ModelFileError) as exc:
        from_pretrained(folder)
    message = _one_line_naming(exc, folder / "config.json")
    assert message.endswith("transformer_layers = 1000000000: Input should be less than or equal to 64")


def test_sizes_that_do_not_fit_together_name_the_config(tiny_dir, tmp_path):
    folder = _copy_config(tiny_dir, tmp_path / "m", transformer_heads=5)  # 48 wide: not divisible by 5
    (folder / "model.safetensors").write_bytes((tiny_dir / "model.safetensors").read_bytes())
    with pytest.raises(ModelFileError) as exc:
        from_pretrained(folder)
    assert "not divisible by 5 heads" in _one_line_naming(exc, folder / "config.json")


def test_weight_shapes_come_from_the_header(tiny_dir):
    with torch.device("meta"):
        model = LRM(SIZES["tiny"])
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert weight_shapes(tiny_dir / "model.safetensors") == expected


def test_config_and_weights_mismatch_is_refused_naming_the_weights(tiny_dir, tmp_path):
    folder = _copy_config(tiny_dir, tmp_path / "m", triplane_dim=16)
    (folder / "model.safetensors").write_bytes((tiny_dir / "model.safetensors").read_bytes())
    with pytest.raises(ModelFileError) as exc:
        from_pretrained(folder)
    message = _one_line_naming(exc, folder / "model.safetensors")
    assert "does not match the LRM architecture" in message and "wrong shape (e.g. " in message


@pytest.mark.parametrize("name", ["model.safetensors", "pytorch_model.bin"])
def test_garbage_weight_files_are_refused(tiny_dir, tmp_path, name: str):
    folder = _copy_config(tiny_dir, tmp_path / "m")
    (folder / name).write_bytes(GARBAGE)
    with pytest.raises(ModelFileError) as exc:
        from_pretrained(folder)
    _one_line_naming(exc, folder / name)


def test_pickled_code_in_a_legacy_bin_is_refused(tiny_dir, tmp_path):
    folder, marker = _copy_config(tiny_dir, tmp_path / "m"), tmp_path / "ran"
    _pickle_bomb(folder / "pytorch_model.bin", marker)
    with pytest.raises(ModelFileError) as exc:
        from_pretrained(folder)
    message = _one_line_naming(exc, folder / "pytorch_model.bin")
    assert "is not a tensor-only torch file (refuses to load 'posix.system'" in message
    assert not marker.exists()
    torch.load(folder / "pytorch_model.bin", weights_only=False)  # the control: the payload is live
    assert marker.exists()


def test_a_legacy_bin_with_the_right_tensors_loads(tiny_dir, tmp_path):
    folder = _copy_config(tiny_dir, tmp_path / "m")
    reference = from_pretrained(tiny_dir)
    torch.save(reference.state_dict(), folder / "pytorch_model.bin")
    loaded = from_pretrained(folder)
    assert all(torch.equal(loaded.state_dict()[k], v) for k, v in reference.state_dict().items())


# The Real-ESRGAN and the perceptual-loss weight loaders: (load, its error, what it says of garbage).
_LOADERS = {"upscale": (read_state_dict, WeightsError, "is unreadable"),
            "perceptual": (PerceptualLoss, PerceptualWeightsError, "are unreadable")}


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
@pytest.mark.parametrize("loader", sorted(_LOADERS))
def test_garbage_weights_are_one_line(tmp_path, loader: str, suffix: str):
    load, error, says = _LOADERS[loader]
    path = tmp_path / f"broken{suffix}"
    path.write_bytes(GARBAGE)
    with pytest.raises(error) as exc:
        load(path)
    assert says in _one_line_naming(exc, path)


@pytest.mark.parametrize("loader", sorted(_LOADERS))
def test_pickled_code_in_weights_is_refused(tmp_path, loader: str):
    load, error, _ = _LOADERS[loader]
    marker = tmp_path / "ran"
    path = _pickle_bomb(tmp_path / "weights.pth", marker)
    with pytest.raises(error) as exc:
        load(path)
    assert "(refuses to load 'posix.system': only tensors are loaded)" in _one_line_naming(exc, path)
    assert not marker.exists()


def test_perceptual_weights_without_a_state_dict_are_refused(tmp_path):
    torch.save([torch.zeros(1)], tmp_path / "list.pth")
    with pytest.raises(PerceptualWeightsError, match="hold no tensor state dict"):
        PerceptualLoss(tmp_path / "list.pth")


@pytest.mark.parametrize("case", ["garbage", "hostile-config"])
def test_infer_cli_refuses_a_bad_model_folder_in_one_line(tiny_dir, tmp_path, case: str):
    if case == "garbage":
        folder = _copy_config(tiny_dir, tmp_path / "m")
        (folder / "model.safetensors").write_bytes(GARBAGE)
        named = folder / "model.safetensors"
    else:
        folder = _copy_config(tiny_dir, tmp_path / "m", transformer_dim=10**9)
        (folder / "model.safetensors").write_bytes((tiny_dir / "model.safetensors").read_bytes())
        named = folder / "config.json"
    image = tmp_path / "chair.png"
    rgba = np.zeros((64, 64, 4), np.uint8)
    rgba[16:48, 16:48] = (200, 30, 30, 255)
    Image.fromarray(rgba).save(image)
    proc = subprocess.run(
        [sys.executable, "-m", "lrm_dist.cli", "infer", str(image), "-o", str(tmp_path / "out"), "--model", str(folder),
         "--set", "serve.device=cpu"],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("lrm-dist infer: error: ") and str(named) in last
