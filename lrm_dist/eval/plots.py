"""Metric distributions per category as PNG plots (matplotlib, headless)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

METRIC_LABELS = {
    "iou": "Volumetric IoU (higher is better)",
    "chamfer_l1": "Chamfer-L1, unit cube (lower is better)",
    "normal_consistency": "Normal consistency (higher is better)",
}


def metric_label(name: str) -> str:
    """A plot title for a metric column name (``fscore@t`` included)."""
    if name in METRIC_LABELS:
        return METRIC_LABELS[name]
    return f"F-score at {name.partition('@')[2]}, unit cube (higher is better)"


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


def plot_distributions(rows: list[dict], out_dir: Path) -> list[Path]:
    """One PNG per metric: a box per category with every asset drawn as a dot; returns the files."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    files = []
    rng = np.random.default_rng(0)
    for name, per_cat in metric_columns(rows).items():
        cats = sorted(per_cat)
        fig, ax = plt.subplots(figsize=(max(4.0, 1.2 * len(cats) + 1.5), 3.6), dpi=110)
        data = [per_cat[c] for c in cats]
        ax.boxplot(data, showfliers=False, widths=0.5)
        for i, values in enumerate(data, start=1):
            ax.scatter(i + rng.uniform(-0.12, 0.12, len(values)), values, s=9, alpha=0.6, color="tab:blue", zorder=3)
        ax.set_xticks(range(1, len(cats) + 1), [f"{c}\n(n={len(per_cat[c])})" for c in cats])
        ax.set_title(metric_label(name), fontsize=10)
        ax.grid(axis="y", alpha=0.3)
        fig.tight_layout()
        path = out_dir / f"{name.replace('@', '_at_')}.png"
        fig.savefig(path)
        plt.close(fig)
        files.append(path)
    return files
