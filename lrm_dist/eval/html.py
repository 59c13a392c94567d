"""The report's static HTML page: provenance (model, training step, config, when, eval hash), tables,
plots, the training loss curve, contact sheet, and each input image next to an interactive 3D view of
its reconstruction (Google's ``<model-viewer>`` web component).

The page loads ``vendor/model-viewer-umd.min.js`` (copied from the npm package at report time; see
``find_model_viewer_js``) with a classic script tag. Browsers do not fetch GLBs from ``file://``
pages, so the 3D views need the folder served over HTTP (``python -m http.server``); the page says
so when opened from disk. A small inline script marks each viewer ``data-state="loaded"`` or
``"error"`` and counts them in ``#viewer-status`` (what the headless-browser test reads).
"""

from __future__ import annotations

import html
import os
import shutil
from pathlib import Path

MODEL_VIEWER_FILE = "model-viewer-umd.min.js"
NPM_DIST = Path("node_modules") / "@google" / "model-viewer" / "dist" / MODEL_VIEWER_FILE
ENV_VAR = "LRM_DIST_MODEL_VIEWER_JS"


def find_model_viewer_js(configured: str | None = None) -> Path | None:
    """The model-viewer UMD bundle: the configured path, $LRM_DIST_MODEL_VIEWER_JS, or an npm install
    (``node_modules/@google/model-viewer``) under the working folder or the repository root."""
    if configured:
        path = Path(configured).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"eval.report.model_viewer_js: file not found: {configured}")
        return path
    candidates = [os.environ.get(ENV_VAR)] if os.environ.get(ENV_VAR) else []
    candidates += [Path.cwd() / NPM_DIST, Path(__file__).resolve().parents[2] / NPM_DIST]
    return next((Path(c) for c in candidates if Path(c).is_file()), None)


def vendor_model_viewer(report_dir: Path, configured: str | None = None) -> str | None:
    """Copy the bundle into ``report_dir/vendor``; returns its relative path (None when not found)."""
    source = find_model_viewer_js(configured)
    if source is None:
        return None
    (report_dir / "vendor").mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, report_dir / "vendor" / MODEL_VIEWER_FILE)
    return f"vendor/{MODEL_VIEWER_FILE}"


_STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: right; }
th:first-child, td:first-child { text-align: left; }
.plots img { max-width: 32%; margin: 2px; border: 1px solid #eee; }
.cards { display: flex; flex-wrap: wrap; gap: 12px; }
.card { border: 1px solid #ddd; border-radius: 6px; padding: 6px; width: 520px; }
.pair { display: flex; gap: 6px; }
.pair img, .pair model-viewer { width: 250px; height: 250px; background: #f4f4f4; }
.meta { font-size: 12px; color: #444; margin-top: 4px; }
#viewer-status { font-weight: bold; }
.note { background: #fff3cd; padding: 6px 10px; border-radius: 4px; }
table.provenance th { text-align: left; background: #f6f6f6; font-weight: 600; }
table.provenance td { text-align: left; font-family: ui-monospace, monospace; font-size: 13px; }
details pre { background: #f6f6f6; padding: 8px; max-height: 30em; overflow: auto; font-size: 12px; }
.curve img { max-width: 100%; border: 1px solid #eee; }
"""

_STATUS_SCRIPT = """
(function () {
  var viewers = Array.prototype.slice.call(document.querySelectorAll('model-viewer'));
  var status = document.getElementById('viewer-status');
  function update() {
    var loaded = viewers.filter(function (v) { return v.dataset.state === 'loaded'; }).length;
    var failed = viewers.filter(function (v) { return v.dataset.state === 'error'; }).length;
    var defined = !!(window.customElements && window.customElements.get('model-viewer'));
    status.textContent = (defined ? '' : '3D viewer script not loaded. ') +
      loaded + ' of ' + viewers.length + ' 3D views loaded' + (failed ? ', ' + failed + ' failed' : '');
    document.body.dataset.viewersLoaded = String(loaded);
    document.body.dataset.viewersFailed = String(failed);
    document.body.dataset.modelViewerDefined = String(defined);
  }
  viewers.forEach(function (v) {
    v.addEventListener('load', function () { v.dataset.state = 'loaded'; update(); });
    v.addEventListener('error', function () { v.dataset.state = 'error'; update(); });
  });
  if (location.protocol === 'file:') {
    document.getElementById('file-note').style.display = 'block';
  }
  update();
  window.addEventListener('load', update);
})();
"""


def _fmt(value, digits: int = 3) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return "nan" if value != value else f"{value:.{digits}f}"
    return str(value)


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m {secs:02d}s" if hours else f"{minutes}m {secs:02d}s"


def provenance_rows(prov: dict) -> list[tuple[str, str, str]]:
    """(key, label, text) of the provenance table, in display order."""
    t, a = prov["training"], prov["assets"]
    model = prov["model"] + (f" (revision {prov['model_revision']})" if prov.get("model_revision") else "")
    step = "unknown (no training record for this model)" if t["step"] is None else str(t["step"])
    if t["step"] is not None and t["train_seconds"] is not None:
        step += f" after {_duration(t['train_seconds'])} of training"
    if t["step"] is not None and t["samples"] is not None:
        step += f", {t['samples']:,} samples"
    rows = [("model", "Model", model), ("step", "Training step", step)]
    if t["source"]:
        rows.append(("training_source", "Step read from", t["source"]))
    if t["run"]:
        rows.append(("run", "Train run", f"{t['run']} (TensorBoard: {t['tensorboard_dir'] or 'no event files'})"))
    rows += [
        ("evaluated_at", "Evaluated (UTC)", prov["evaluated_at"] or "not recorded (evaluated before provenance was kept)"),
        ("report_built_at", "Report built (UTC)", prov["report_built_at"]),
        ("eval_hash", "Evaluation hash", str(prov["eval_hash"])),
        ("assets", "Assets", f"{a['scored']} scored ({a['empty']} empty), {a['failed']} failed; "
                             f"{len(a['categories'])} categories: {', '.join(a['categories'])}"),
        ("config_sha256", "Config", f"sha256 {prov['config_sha256']}" + ("" if prov["evaluated_at"] else
                                                                        " (the config at report time)")),
    ]
    if prov.get("settings"):
        rows.append(("settings", "Hashed settings", ", ".join(f"{k}={v}" for k, v in prov["settings"].items())))
    rows.append(("lrm_dist_version", "lrm-dist version", prov["lrm_dist_version"]))
    return rows


def provenance_html(prov: dict, config_file: str) -> str:
    """The provenance table, then the resolved config folded away (and linked as ``config_file``)."""
    lines = ['<table class="provenance" id="provenance">']
    lines += [f'<tr data-key="{key}"><th>{html.escape(label)}</th><td>{html.escape(text)}</td></tr>'
              for key, label, text in provenance_rows(prov)]
    lines += ["</table>", f'<details><summary>Resolved config (<a href="{html.escape(config_file)}">'
              f"{html.escape(config_file)}</a>)</summary><pre>{html.escape(prov['config'])}</pre></details>"]
    return "\n".join(lines)


def summary_table_html(summary: list[dict]) -> str:
    thresholds = summary[0]["fscore_thresholds"] if summary else []
    head = ["category", "assets", "empty", "failed", "IoU", "IoU median", "Chamfer-L1", "NC"]
    head += [f"F@{t:g}" for t in thresholds]
    lines = ["<table><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in head) + "</tr>"]
    for r in summary:
        name = {"class_mean": "mean over categories", "all": "all assets"}.get(r["kind"], r["category"])
        cells = [name, r["n_assets"], r["n_empty"], r["n_failed"], _fmt(r["iou"]), _fmt(r["iou_median"]),
                 _fmt(r["chamfer_l1"], 4), _fmt(r["normal_consistency"])] + [_fmt(f) for f in r["fscore"]]
        lines.append("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in cells) + "</tr>")
    return "\n".join(lines + ["</table>"])


def _card(row: dict) -> str:
    aid = html.escape(row["asset_id"])
    f = ", ".join(f"F@{t:g} {v:.2f}" for t, v in zip(row["fscore_thresholds"], row["fscore"]))
    image = "<div>(no input)</div>"
    if row.get("report_input"):
        image = f'<img src="{html.escape(row["report_input"])}" alt="input view of {aid}">'
    if row.get("report_mesh"):
        view = (f'<model-viewer src="{html.escape(row["report_mesh"])}" alt="reconstruction of {aid}" '
                f'camera-controls auto-rotate shadow-intensity="0.6" exposure="1.1"></model-viewer>')
    else:
        view = "<div>(empty reconstruction)</div>"
    meta = (f"<b>{aid}</b> ({html.escape(row['category'])}): IoU {row['iou']:.3f}, Chamfer-L1 {row['chamfer_l1']:.4f}, "
            f"NC {row['normal_consistency']:.3f}, {f}")
    return f'<div class="card"><div class="pair">{image}{view}</div><div class="meta">{meta}</div></div>'


def write_page(
    path: Path, title: str, provenance: str, summary: list[dict], plots: list[str], loss_curve: str | None,
    contact_sheet: str | None, cards: dict[str, list[dict]], viewer_js: str | None, notes: list[str],
) -> Path:
    """Write the report page; ``provenance`` is ``provenance_html``'s, ``cards`` maps category -> rows with
    ``report_input``/``report_mesh`` set."""
    script = (f'<script src="{html.escape(viewer_js)}"></script>' if viewer_js else "")
    parts = [
        "<!doctype html>", '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style>{script}</head><body>",
        f"<h1>{html.escape(title)}</h1>",
        *(f'<p class="note">{html.escape(n)}</p>' for n in notes),
        '<p class="note" id="file-note" style="display:none">Opened from disk: browsers do not load 3D models '
        "from file:// pages. Serve this folder, e.g. <code>python -m http.server --directory &lt;this folder&gt; "
        "8000</code>, and open http://127.0.0.1:8000/.</p>",
        "<h2>Provenance</h2>", provenance,
        "<h2>Per category</h2>", summary_table_html(summary),
        "<p>Metrics follow Occupancy Networks on meshes scaled to the unit cube: IoU at uniform points, Chamfer-L1 = "
        "0.5 (accuracy + completeness) with unsquared distances, normal consistency, F-score at distance thresholds. "
        "Empty predictions count as IoU 0 and the worst Chamfer distance.</p>",
        "<h2>Distributions</h2>", '<div class="plots">',
        *(f'<a href="{html.escape(p)}"><img src="{html.escape(p)}" alt="{html.escape(p)}"></a>' for p in plots),
        "</div>",
    ]
    if loss_curve:
        parts += ['<h2 id="training-curve">Training loss</h2>', '<div class="curve">',
                  f'<a href="{html.escape(loss_curve)}"><img src="{html.escape(loss_curve)}" alt="training loss curve"></a>',
                  "</div>"]
    if contact_sheet:
        parts += ["<h2>Best, median and worst per category</h2>",
                  "<p>Input view | ground truth | reconstruction, rendered from the input camera.</p>",
                  f'<a href="{html.escape(contact_sheet)}"><img src="{html.escape(contact_sheet)}" '
                  'alt="contact sheet" style="max-width:100%"></a>']
    parts += ["<h2>Reconstructions</h2>", '<p id="viewer-status">3D views loading</p>']
    for category, rows in cards.items():
        parts += [f"<h3>{html.escape(category)}</h3>", '<div class="cards">', *(_card(r) for r in rows), "</div>"]
    parts += [f"<script>{_STATUS_SCRIPT}</script>", "</body></html>"]
    path.write_text("\n".join(parts) + "\n")
    return path
