"""The report's plots as PNGs (matplotlib, headless): metric distributions per category on fixed axes,
and the training loss curves."""

from __future__ import annotations

from pathlib import Path

import numpy as np

METRIC_LABELS = {
    "iou": "Volumetric IoU (higher is better)",
    "chamfer_l1": "Chamfer-L1, unit cube (lower is better)",
    "normal_consistency": "Normal consistency (higher is better)",
}
STYLE = {"font.size": 12, "axes.titlesize": 14, "axes.labelsize": 12, "xtick.labelsize": 11, "ytick.labelsize": 11,
         "legend.fontsize": 11}
"""Readable when a plot is shown at a third of the page width."""


def metric_label(name: str) -> str:
    """A plot title for a metric column name (``fscore@t`` included)."""
    if name in METRIC_LABELS:
        return METRIC_LABELS[name]
    return f"F-score at {name.partition('@')[2]}, unit cube (higher is better)"


def metric_ylim(name: str, values: list[float]) -> tuple[float, float]:
    """Fixed y range of a metric: [0, 1] for IoU, NC and F-scores; Chamfer from 0 to a little above its maximum."""
    if name != "chamfer_l1":
        return 0.0, 1.0
    return 0.0, max(1.1 * max(values, default=0.0), 0.01)


def metric_columns(rows: list[dict]) -> dict[str, dict[str, list[float]]]:
    """{metric name: {category: values}} of ok rows, F-scores split per threshold as ``fscore@t``."""
    out: dict[str, dict[str, list[float]]] = {}
    for r in rows:
        if r["status"] != "ok":
            continue
        values = {k: r[k] for k in METRIC_LABELS}
        values.update({f"fscore@{t:g}": f for t, f in zip(r["fscore_thresholds"], r["fscore"])})
        for name, value in values.items():
            out.setdefault(name, {}).setdefault(r["category"], []).append(float(value))
    return out


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def metric_figure(name: str, per_cat: dict[str, list[float]], seed: int = 0):
    """One metric's figure: a box per category with every asset drawn as a dot, on the metric's fixed y range."""
    plt = _pyplot()
    rng = np.random.default_rng(seed)
    cats = sorted(per_cat)
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=(max(5.0, 1.4 * len(cats) + 2.0), 4.2), dpi=110)
        data = [per_cat[c] for c in cats]
        ax.boxplot(data, showfliers=False, widths=0.5)
        for i, values in enumerate(data, start=1):
            ax.scatter(i + rng.uniform(-0.12, 0.12, len(values)), values, s=14, alpha=0.6, color="tab:blue",
                       zorder=3, clip_on=False)  # dots at exactly 0 or 1 drawn whole
        ax.set_xticks(range(1, len(cats) + 1), [f"{c}\n(n={len(per_cat[c])})" for c in cats])
        ax.set_ylim(*metric_ylim(name, [v for values in data for v in values]))
        ax.set_title(metric_label(name))
        ax.grid(axis="y", alpha=0.3)
        fig.tight_layout()
    return fig


def plot_distributions(rows: list[dict], out_dir: Path) -> list[Path]:
    """One PNG per metric (``metric_figure``); returns the files."""
    plt = _pyplot()
    out_dir.mkdir(parents=True, exist_ok=True)
    files = []
    for name, per_cat in metric_columns(rows).items():
        fig = metric_figure(name, per_cat)
        path = out_dir / f"{name.replace('@', '_at_')}.png"
        fig.savefig(path)
        plt.close(fig)
        files.append(path)
    return files


def loss_figure(curves: dict[str, tuple[list[int], list[float]]], model_step: int | None = None):
    """Total loss (left) and the loss terms (right) against step, each panel on a log scale when all its values
    are positive; a dashed line marks the evaluated model's step."""
    plt = _pyplot()
    groups = [("Training loss (total)", {k: v for k, v in curves.items() if k == "loss/total"}),
              ("Loss terms", {k: v for k, v in curves.items() if k != "loss/total"})]
    groups = [(title, group) for title, group in groups if group]
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(1, len(groups), figsize=(6.0 * len(groups) + 0.5, 4.2), dpi=110, squeeze=False)
        for ax, (title, group) in zip(axes[0], groups):
            for tag, (steps, values) in group.items():
                ax.plot(steps, values, label=tag.removeprefix("loss/"), linewidth=1.6)
            if all(v > 0 for _, values in group.values() for v in values):
                ax.set_yscale("log")
            if model_step is not None:
                ax.axvline(model_step, color="0.4", linestyle="--", linewidth=1.0, label=f"evaluated (step {model_step})")
            ax.set_xlim(left=0)
            ax.set(title=title, xlabel="step", ylabel="loss")
            ax.grid(alpha=0.3)
            ax.legend()
        fig.tight_layout()
    return fig


def plot_loss_curves(curves: dict[str, tuple[list[int], list[float]]], path: Path, model_step: int | None = None) -> Path:
    """Save ``loss_figure`` as a PNG; returns the file."""
    plt = _pyplot()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig = loss_figure(curves, model_step)
    fig.savefig(path)
    plt.close(fig)
    return path
