"""An LPIPS-style perceptual distance on a VGG16 backbone whose weights come from a local file.

The network follows LPIPS (Zhang et al. 2018, "vgg" variant): inputs in [-1, 1] are shifted and
scaled per channel, VGG16 features are taken after relu1_2, relu2_2, relu3_3, relu4_3 and relu5_3,
unit-normalised along channels, squared differences are weighted per channel (the LPIPS linear
heads when given, else equally) and averaged over space, then summed over the five layers.
Nothing is downloaded: the backbone must be given as a torchvision ``vgg16`` state dict file.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

# torchvision's vgg16 "features" layout: numbers are conv widths, "M" a 2x2 max-pool.
_VGG16 = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512]
# Indices (exclusive ends) into ``features`` after relu1_2, relu2_2, relu3_3, relu4_3, relu5_3.
_TAPS = (4, 9, 16, 23, 30)
_SHIFT = (-0.030, -0.088, -0.188)
_SCALE = (0.458, 0.448, 0.450)


def _vgg16_features() -> nn.Sequential:
    layers: list[nn.Module] = []
    channels = 3
    for item in _VGG16:
        if item == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(channels, int(item), 3, padding=1), nn.ReLU(inplace=False)]
            channels = int(item)
    return nn.Sequential(*layers)


class PerceptualWeightsError(ValueError):
    """A perceptual weights file that cannot be read as tensors; the message is one line naming the file."""


def _load_tensors(path: str | Path) -> dict[str, torch.Tensor]:
    """A ``.safetensors`` file, or a weights-only ``torch.load`` (pickled code is refused), as a tensor dict."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"perceptual weights file not found: {path}")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            obj = load_file(str(path))
        else:
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # SafetensorError, UnpicklingError, zip/EOF errors: all mean "not a weights file"
        from lrm_dist.train.checkpoint import load_failure

        raise PerceptualWeightsError(f"perceptual weights {path} are unreadable ({load_failure(path, exc)})") from None
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise PerceptualWeightsError(f"perceptual weights {path} hold no tensor state dict (got {type(obj).__name__})")
    return obj


class PerceptualLoss(nn.Module):
    """LPIPS-style distance between image batches in [0, 1]; frozen, kept outside the trained model."""

    def __init__(self, backbone_path: str | Path, linear_path: str | Path | None = None):
        super().__init__()
        self.features = _vgg16_features()
        state = _load_tensors(backbone_path)
        backbone = {k.removeprefix("features."): v for k, v in state.items() if k.startswith("features.")}
        if not backbone:
            raise ValueError(f"perceptual weights {backbone_path}: no 'features.*' tensors (torchvision vgg16 layout)")
        self.features.load_state_dict(backbone, strict=True)
        widths = [64, 128, 256, 512, 512]
        self.linear = nn.ParameterList(nn.Parameter(torch.ones(1, c, 1, 1) / c) for c in widths)
        if linear_path is not None:
            lin = _load_tensors(linear_path)
            for i, param in enumerate(self.linear):
                key = f"lin{i}.model.1.weight"
                if key not in lin or lin[key].shape != param.shape:
                    raise ValueError(f"LPIPS linear weights {linear_path}: missing or misshapen {key}")
                param.data.copy_(lin[key])
        self.register_buffer("shift", torch.tensor(_SHIFT).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor(_SCALE).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        self.eval()

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """pred, target: [B, 3, H, W] in [0, 1] -> the mean distance over the batch (scalar)."""
        x = torch.cat([pred, target]).float() * 2 - 1
        x = (x - self.shift) / self.scale
        total = x.new_zeros(())
        start = 0
        for tap, weight in zip(_TAPS, self.linear):
            for layer in self.features[start:tap]:
                x = layer(x)
            start = tap
            a, b = x.chunk(2)
            a = a / (a.norm(dim=1, keepdim=True) + 1e-10)
            b = b / (b.norm(dim=1, keepdim=True) + 1e-10)
            total = total + ((a - b) ** 2 * weight).sum(1).mean()
        return total
