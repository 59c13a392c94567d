"""The report folder from scored rows (no Ray): provenance, training curve, fixed plot axes, eval scalars in
TensorBoard, and its HTML page in a real headless Chromium."""

from __future__ import annotations

import hashlib
import html
import json
import re
import shutil
import subprocess
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import yaml
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import lrm_dist
from lrm_dist.eval.html import find_model_viewer_js
from lrm_dist.eval.plots import metric_figure
from lrm_dist.eval.provenance import collect_provenance, training_info, write_provenance
from lrm_dist.eval.report import spread_by_iou, write_report
from lrm_dist.eval.tables import read_summary
from lrm_dist.eval.tensorboard import log_eval_scalars, read_loss_curves
from lrm_dist.storage import Storage

TIMESTAMP = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"
SETTINGS = {"eval_hash": "h-test", "n_points": 3000, "thresholds": [0.01, 0.02, 0.05], "seed": 0}


def _train_export(workdir: Path, step: int = 120) -> tuple[Path, Path]:
    """The config's train export (config.json + training.json) and its run's TensorBoard events, written by
    tensorboardX like any SummaryWriter: loss/total = 2 loss/rgb = 2 loss/mask = 2/step, and the lr."""
    from tensorboardX import SummaryWriter

    model = workdir / "train" / "model"
    model.mkdir(parents=True)
    (model / "config.json").write_text("{}\n")
    (model / "training.json").write_text(json.dumps({"step": step, "train_seconds": 3723.4, "samples": 960}))
    board = workdir / "train" / "tensorboard" / "lrm"
    writer = SummaryWriter(str(board))
    for s in range(10, step + 1, 10):
        writer.add_scalar("loss/total", 2.0 / s, s)
        writer.add_scalar("loss/rgb", 1.0 / s, s)
        writer.add_scalar("loss/mask", 1.0 / s, s)
        writer.add_scalar("lr", 1e-4, s)
    writer.close()
    return model, board


def _cells(page: str) -> dict[str, str]:
    """The provenance table of a report page as {data-key: cell text}."""
    return {k: html.unescape(v) for k, v in re.findall(r'<tr data-key="(\w+)"><th>[^<]*</th><td>([^<]*)</td></tr>', page)}

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
    # tables without provenance.json: the model from the rows, the config given now, no curve
    doc = json.loads((report / "report.json").read_text())
    assert doc["title"] == "lrm-dist evaluation: test" and "<h1>lrm-dist evaluation: test</h1>" in page
    cells = _cells(page)
    assert cells["model"] == "test" and cells["step"].startswith("unknown") and cells["eval_hash"] == "h-test"
    assert cells["evaluated_at"].startswith("not recorded") and re.fullmatch(TIMESTAMP, cells["report_built_at"])
    assert "no provenance record" in page and doc["loss_curve"] is None and 'id="training-curve"' not in page
    assert yaml.safe_load((report / "config.yaml").read_text())["workdir"] == cfg.workdir


def test_report_shows_provenance_and_the_training_curve(scored_eval):
    eval_dir, cfg = scored_eval
    model, board = _train_export(Path(cfg.workdir))
    storage = Storage(str(eval_dir))
    prov = collect_provenance(cfg, str(model), {**SETTINGS, "checkpoint": str(model)}, read_summary(storage))
    write_provenance(storage, prov)
    report = write_report(str(eval_dir), cfg)
    page = (report / "index.html").read_text()
    doc = json.loads((report / "report.json").read_text())
    p = doc["provenance"]

    assert doc["title"] == f"lrm-dist evaluation: {model} at step 120"
    assert f"<title>{html.escape(doc['title'])}</title>" in page and f"<h1>{html.escape(doc['title'])}</h1>" in page
    assert p["training"] == {"step": 120, "train_seconds": 3723.4, "samples": 960, "source": str(model / "training.json"),
                             "run": "lrm", "tensorboard_dir": str(board)}
    assert re.fullmatch(TIMESTAMP, p["evaluated_at"]) and re.fullmatch(TIMESTAMP, p["report_built_at"])
    assert p["settings"] == {"n_points": 3000, "thresholds": [0.01, 0.02, 0.05], "seed": 0}
    assert p["assets"] == {"scored": 4, "empty": 1, "failed": 0, "categories": ["chair", "table"]}
    assert p["lrm_dist_version"] == lrm_dist.__version__ and "config" not in p  # the config is its own file
    cells = _cells(page)
    assert cells["model"] == str(model)
    assert cells["step"] == "120 after 1h 02m 03s of training, 960 samples"
    assert cells["run"] == f"lrm (TensorBoard: {board})"
    assert cells["evaluated_at"] == p["evaluated_at"] and cells["eval_hash"] == "h-test"
    assert cells["assets"] == "4 scored (1 empty), 0 failed; 2 categories: chair, table"
    assert cells["lrm_dist_version"] == lrm_dist.__version__
    config = (report / "config.yaml").read_text()
    assert yaml.safe_load(config)["workdir"] == cfg.workdir and html.escape(config) in page
    assert cells["config_sha256"] == f"sha256 {hashlib.sha256(config.encode()).hexdigest()}" == f"sha256 {p['config_sha256']}"
    assert "no provenance record" not in page

    assert doc["loss_curve"] == {"file": "plots/training_loss.png", "tensorboard_dir": str(board),
                                 "tags": ["loss/mask", "loss/rgb", "loss/total"], "last_step": 120}
    assert 'id="training-curve"' in page and '<img src="plots/training_loss.png"' in page
    with Image.open(report / "plots" / "training_loss.png") as png:
        assert png.width > 1000  # total and terms side by side
    assert "plots/training_loss.png" not in doc["plots"]  # not one of the distributions


def test_eval_scalars_go_to_the_train_runs_tensorboard_at_its_step(scored_eval, tmp_path):
    eval_dir, cfg = scored_eval
    model, board = _train_export(Path(cfg.workdir))
    summary = read_summary(Storage(str(eval_dir)))
    prov = collect_provenance(cfg, str(model), {**SETTINGS, "checkpoint": str(model)}, summary)
    assert log_eval_scalars(summary, prov, str(eval_dir)) == str(board)
    acc = EventAccumulator(str(board), size_guidance={"scalars": 0})
    acc.Reload()
    mean = next(r for r in summary if r["kind"] == "class_mean")
    chair = next(r for r in summary if r["category"] == "chair")
    expected = {"eval/iou": mean["iou"], "eval/iou_median": mean["iou_median"], "eval/chamfer_l1": mean["chamfer_l1"],
                "eval/normal_consistency": mean["normal_consistency"], "eval/fscore@0.01": mean["fscore"][0],
                "eval/fscore@0.02": mean["fscore"][1], "eval/fscore@0.05": mean["fscore"][2], "eval/iou/chair": chair["iou"]}
    for tag, value in expected.items():
        (event,) = acc.Scalars(tag)
        assert event.step == 120 and event.value == pytest.approx(value, rel=1e-6), tag
    assert {t for t in acc.Tags()["scalars"] if t.startswith("eval/iou/")} == {"eval/iou/chair", "eval/iou/table"}
    assert sorted(read_loss_curves(board)) == ["loss/mask", "loss/rgb", "loss/total"]  # the curve ignores eval/*

    # a model without a train run: <eval dir>/tensorboard at step 0
    other = tmp_path / "hub-like"
    other.mkdir()
    (other / "config.json").write_text("{}\n")
    prov = collect_provenance(cfg, str(other), {**SETTINGS, "checkpoint": str(other)}, summary)
    assert prov["training"]["step"] is None and prov["training"]["tensorboard_dir"] is None
    assert log_eval_scalars(summary, prov, str(eval_dir)) == str(eval_dir / "tensorboard")
    acc = EventAccumulator(str(eval_dir / "tensorboard"))
    acc.Reload()
    assert [(e.step, e.value) for e in acc.Scalars("eval/iou")] == [(0, pytest.approx(mean["iou"], rel=1e-6))]


def test_training_step_from_the_runs_newest_checkpoint_when_the_export_has_none(scored_eval):
    _, cfg = scored_eval
    model, _ = _train_export(Path(cfg.workdir))
    (model / "training.json").unlink()
    for step in (10, 20):
        folder = Path(cfg.workdir) / "train" / "ray" / "lrm" / f"checkpoint_{step:08d}"
        folder.mkdir(parents=True)
        (folder / "progress.json").write_text(json.dumps({"step": step, "train_seconds": 2.5 * step, "samples": 8 * step}))
    info = training_info(cfg, str(model))
    assert (info["step"], info["train_seconds"], info["samples"]) == (20, 50.0, 160)
    assert info["source"].endswith("checkpoint_00000020/progress.json")
    assert training_info(cfg, "org/some-hub-model")["step"] is None  # hub ids: nothing local to read


@pytest.mark.parametrize("name", ["iou", "normal_consistency", "fscore@0.01"])
def test_bounded_metrics_plot_on_zero_to_one_even_when_flat(name):
    for values in ([0.0, 0.0, 0.0], [0.41, 0.42], [1.0, 1.0]):
        fig = metric_figure(name, {"chair": values, "table": values})
        ax = fig.axes[0]
        assert ax.get_ylim() == (0.0, 1.0), values
        assert ax.title.get_fontsize() >= 13 and min(t.get_fontsize() for t in ax.get_xticklabels()) >= 11


def test_chamfer_plots_from_zero():
    assert metric_figure("chamfer_l1", {"chair": [0.0, 0.0]}).axes[0].get_ylim() == (0.0, 0.01)  # flat zero: no -0.04
    assert metric_figure("chamfer_l1", {"chair": [0.2, 0.5]}).axes[0].get_ylim() == pytest.approx((0.0, 0.55))


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


def test_contact_sheet_rows_show_the_shapes_from_the_input_camera_and_from_the_side(tmp_path):
    import trimesh

    from lrm_dist.eval.contact_sheet import render_row, turned

    front = np.eye(4)
    front[:3, :3] = [[1, 0, 0], [0, 0, -1], [0, 1, 0]]  # OpenGL camera on -y looking at the origin, z up
    front[:3, 3] = [0, -3.0, 0]
    side = turned(front, 90.0)
    np.testing.assert_allclose(side[:3, 3], [3.0, 0, 0], atol=1e-12)  # orbited to +x, still looking at the origin
    np.testing.assert_allclose(side[:3, 2], [1.0, 0, 0], atol=1e-12)
    np.testing.assert_allclose(side[:3, 1], front[:3, 1])  # the vertical stays up
    deep = trimesh.creation.box(extents=(0.3, 1.6, 0.3))  # thin seen from the front, long seen from the side
    row = {"input_c2w": front.reshape(-1).tolist(), "input_intrinsics": [96.0, 96.0, 48.0, 48.0, 96, 96],
           "input_file": None, "iou": 0.5}
    tiles = render_row(row, deep, deep, tmp_path, 96)
    assert len(tiles) == 5

    def width(tile) -> int:  # silhouette columns of a mesh tile (below its caption strip)
        body = np.asarray(tile)[18:]
        return int((body.min(axis=(0, 2)) < 250).sum())

    gt_front, pred_front, gt_side, pred_side = (width(t) for t in tiles[1:])
    assert gt_front == pred_front and gt_side == pred_side
    assert gt_side > 3 * gt_front > 0  # the 1.6-long side shows only from the side
