"""The report folder from scored rows (no Ray), and its HTML page in a real headless Chromium."""

from __future__ import annotations

import re
import shutil
import subprocess
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from lrm_dist.eval.html import find_model_viewer_js
from lrm_dist.eval.report import spread_by_iou, write_report

def test_report_folder(scored_eval):
    eval_dir, cfg = scored_eval
    report = write_report(str(eval_dir), cfg)
    md = (report / "summary.md").read_text()
    chair = next(line for line in md.splitlines() if line.startswith("| chair |"))
    table = next(line for line in md.splitlines() if line.startswith("| table |"))
    assert chair.split("|")[2:5] == [" 2 ", " 0 ", " 0 "]   # assets, empty, failed
    assert table.split("|")[2:5] == [" 2 ", " 1 ", " 0 "]
    tables = [r for r in pq.read_table(eval_dir / "eval.parquet").to_pylist() if r["category"] == "table"]
    assert sorted(r["iou"] == 0.0 for r in tables) == [False, True]  # the empty prediction scores IoU 0
    assert float(table.split("|")[5]) == pytest.approx(np.mean([r["iou"] for r in tables]), abs=5e-4)
    for name in ("iou", "chamfer_l1", "normal_consistency", "fscore_at_0.01", "fscore_at_0.05"):
        assert (report / "plots" / f"{name}.png").is_file(), name
    with Image.open(report / "contact_sheet.png") as sheet:
        assert sheet.width >= 2 * 3 * 96 and sheet.height >= 2 * 96  # 2 categories x (best, worst) x 3 tiles
    page = (report / "index.html").read_text()
    assert len(re.findall(r"<model-viewer ", page)) == 3  # the empty table has no 3D view
    assert page.count("<img src=\"inputs/") == 4
    for src in re.findall(r'<model-viewer src="([^"]+)"', page):
        assert (report / src).is_file()


def test_spread_by_iou_keeps_best_and_worst():
    rows = [{"asset_id": f"a{i}", "status": "ok", "iou": i / 10} for i in range(10)]
    picked = spread_by_iou(rows + [{"asset_id": "f", "status": "failed", "iou": None}], 3)
    assert [r["asset_id"] for r in picked] == ["a9", "a5", "a0"]  # best, middle of the ranking, worst; failed rows never


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--enable-unsafe-swiftshader", "--disable-quic",
                  "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--window-size=1400,4000"]


@pytest.mark.integration
@pytest.mark.skipif(CHROMIUM is None, reason="headless check needs Debian's chromium: apt-get install -y chromium")
@pytest.mark.skipif(find_model_viewer_js() is None, reason=(
    "needs @google/model-viewer's dist/model-viewer-umd.min.js: `npm install --no-save --no-package-lock "
    "@google/model-viewer@4.4.0` in the repo root, or set LRM_DIST_MODEL_VIEWER_JS"))
def test_report_page_loads_every_3d_view_in_headless_chromium(scored_eval, tmp_path):
    eval_dir, cfg = scored_eval
    report = write_report(str(eval_dir), cfg)
    assert (report / "vendor" / "model-viewer-umd.min.js").is_file()
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(SimpleHTTPRequestHandler, directory=str(report)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/index.html"
        proc = subprocess.run(
            [CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'chromium'}", "--virtual-time-budget=20000",
             "--dump-dom", url],
            capture_output=True, text=True, timeout=120,
        )
    finally:
        server.shutdown()
        server.server_close()
    dom = proc.stdout
    assert proc.returncode == 0 and "<body" in dom, proc.stderr[-2000:]
    assert 'data-model-viewer-defined="true"' in dom
    viewers = re.findall(r"<model-viewer [^>]*>", dom)
    assert len(viewers) == 3
    assert all('data-state="loaded"' in v for v in viewers), viewers
    assert "3 of 3 3D views loaded" in dom


def test_model_viewer_script_lookup(tmp_path, monkeypatch):
    monkeypatch.delenv("LRM_DIST_MODEL_VIEWER_JS", raising=False)
    with pytest.raises(FileNotFoundError, match="model_viewer_js"):
        find_model_viewer_js(str(tmp_path / "missing.js"))
    npm = tmp_path / "node_modules" / "@google" / "model-viewer" / "dist" / "model-viewer-umd.min.js"
    npm.parent.mkdir(parents=True)
    npm.write_text("// bundle")
    monkeypatch.chdir(tmp_path)
    assert find_model_viewer_js() == npm
    other = tmp_path / "elsewhere.js"
    other.write_text("// bundle")
    monkeypatch.setenv("LRM_DIST_MODEL_VIEWER_JS", str(other))
    assert find_model_viewer_js() == other


def test_best_median_worst_picks():
    from lrm_dist.eval.contact_sheet import pick_best_median_worst

    rows = [{"asset_id": f"a{i}", "status": "ok", "iou": i / 10} for i in range(5)]
    assert [(label, r["asset_id"]) for label, r in pick_best_median_worst(rows)] == [
        ("best", "a4"), ("median", "a2"), ("worst", "a0")]
    assert [label for label, _ in pick_best_median_worst(rows[:2])] == ["best", "worst"]
    assert [label for label, _ in pick_best_median_worst(rows[:1])] == ["best"]
    assert pick_best_median_worst([{"asset_id": "f", "status": "failed", "iou": None}]) == []
