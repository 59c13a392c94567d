"""``lrm-dist upscale IN OUT`` on a folder of images."""

from __future__ import annotations

import numpy as np
from PIL import Image

from lrm_dist.cli import main
from lrm_dist.upscale.folder import read_image
from tests.hostile_images import GREY16_VALUES, grey16_png, png_bomb, truncated_png


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


def test_bad_files_are_skipped_reported_and_exit_1_after_the_others(tmp_path, capsys, caplog):
    src, dst = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (12, 10, 3), dtype=np.uint8)).save(src / "a.png")
    (src / "grey16.png").write_bytes(grey16_png(tile=(4, 2)))  # 8 wide, 4 high, 16-bit grey
    (src / "notes.png").write_text("not an image")
    (src / "bomb.png").write_bytes(png_bomb(20000, 20000))
    (src / "big.png").write_bytes(png_bomb(8000, 8500))  # under Pillow's limits, over ours
    (src / "cut.png").write_bytes(truncated_png())
    (src / "folder.png").mkdir()  # not a file: ignored
    args = ["upscale", str(src), str(dst), "--set", "upscale.model=realesr-animevideov3-x2",
            "--set", "upscale.weights_source=ncnn", "--set", f"upscale.cache_dir={tmp_path / 'cache'}"]
    assert main(args) == 1
    out, err = capsys.readouterr()
    assert "Traceback" not in err and "lrm-dist upscale: failed items: upscale 4" in err
    assert out.strip() == f"upscale: 2 images upscaled, 0 already done, 4 failed -> {dst}"
    assert sorted(r.getMessage() for r in caplog.records if r.levelname == "ERROR") == [
        f"{src / 'big.png'}: image is 8000x8500 (68.0 megapixels), over the 67.1 megapixel limit; not decoded",
        f"{src / 'bomb.png'}: image too large to decode safely (DecompressionBombError: Image size (400000000 pixels) "
        "exceeds limit of 178956970 pixels, could be decompression bomb DOS attack.)",
        f"{src / 'cut.png'}: not a readable image (OSError: image file is truncated)",
        f"{src / 'notes.png'}: not a readable image (not a PNG, JPEG, WEBP, BMP or TIFF file)",
    ]
    assert sorted(p.name for p in dst.iterdir()) == ["a.png", "grey16.png"]
    with Image.open(dst / "grey16.png") as grey:  # 16-bit stays 16-bit: not clipped to 8 bits
        assert grey.mode == "I;16" and grey.size == (16, 8) and np.asarray(grey).max() > 255
    assert read_image(src / "grey16.png").tolist() == np.tile(GREY16_VALUES, (4, 2)).tolist()
    assert main(args) == 1  # the finished images are kept; only the bad ones are tried again
    assert capsys.readouterr().out.strip() == f"upscale: 0 images upscaled, 2 already done, 4 failed -> {dst}"
