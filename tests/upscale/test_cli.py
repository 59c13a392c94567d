"""``lrm-dist upscale IN OUT`` on a folder of images."""

from __future__ import annotations

import numpy as np
from PIL import Image

from lrm_dist.cli import main


def test_cli_upscales_a_folder(tmp_path):
    src, dst = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (16, 12, 4), dtype=np.uint8)).save(src / "a.png")
    Image.fromarray(rng.integers(0, 256, (10, 10, 3), dtype=np.uint8)).save(src / "b.jpg")
    Image.fromarray(rng.integers(0, 256, (8, 8), dtype=np.uint8)).save(src / "c.png")
    (src / "notes.txt").write_text("not an image")
    args = ["upscale", str(src), str(dst), "--set", "upscale.model=realesr-animevideov3-x2",
            "--set", "upscale.weights_source=ncnn", "--set", f"upscale.cache_dir={tmp_path / 'cache'}"]
    assert main(args) == 0
    outs = {p.name: Image.open(p) for p in sorted(dst.iterdir())}
    assert {k: (v.mode, v.size) for k, v in outs.items()} == {
        "a.png": ("RGBA", (24, 32)), "b.png": ("RGB", (20, 20)), "c.png": ("L", (16, 16))}
    before = (dst / "a.png").stat().st_mtime_ns
    assert main(args) == 0  # resumes: outputs that exist are skipped
    assert (dst / "a.png").stat().st_mtime_ns == before
    assert main(["upscale", str(tmp_path / "missing"), str(dst)]) == 2
