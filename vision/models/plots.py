"""Evaluation pictures: ROC curves, reliability diagrams and anomaly-score histograms, saved as PNG.

Matplotlib runs headless here (training servers, CI): the Agg backend is selected inside each call, before
pyplot is first imported, so importing this module never touches a display. Every figure is closed after
saving, because pyplot keeps figures alive otherwise and a training run draws many.
"""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

import numpy as np

from vesalius.vision.models.metrics import Reliability

if TYPE_CHECKING:
    from matplotlib.figure import Figure

_DPI = 120
_SQUARE = (5.0, 5.0)
_TALL = (5.0, 6.0)


def _wrap(title: str) -> str:
    """Titles wrap at the figure's width instead of running off it."""
    return textwrap.fill(title, 48)


def _pyplot() -> ModuleType:
    import matplotlib

    # Only before pyplot's first import: switching later would close the figures of a caller (a notebook) that
    # chose its own backend, and Agg is what a headless process gets anyway.
    if "matplotlib.pyplot" not in sys.modules:
        try:
            matplotlib.use("Agg")
        except (ImportError, ValueError):
            pass
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Figure, path: Path) -> Path:
    plt = _pyplot()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fig.savefig(path, dpi=_DPI, format="png")
    finally:
        plt.close(fig)
    return path


def plot_roc(
    curves: dict[str, tuple[np.ndarray, np.ndarray, float]],
    path: Path,
    title: str,
    operating_points: dict[str, tuple[float, float]] | None = None,
) -> Path:
    """ROC curves, one per name: `curves[name] = (fpr, tpr, auroc)`.

    `operating_points[name] = (sensitivity, specificity)` adds a marker at (1 - specificity, sensitivity), in
    the colour of the curve with the same name when there is one.
    """
    if not curves:
        raise ValueError("plot_roc needs at least one curve")
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=_SQUARE)
    colours: dict[str, str] = {}
    for name, (fpr, tpr, area) in curves.items():
        (line,) = ax.plot(np.asarray(fpr), np.asarray(tpr), lw=1.8, label=f"{name} (AUROC {area:.3f})")
        colours[name] = line.get_color()
    ax.plot([0.0, 1.0], [0.0, 1.0], ls="--", lw=1.0, color="grey", label="chance")
    for name, (sensitivity, specificity) in (operating_points or {}).items():
        ax.plot(
            1.0 - specificity,
            sensitivity,
            marker="o",
            ms=7,
            ls="none",
            mec="black",
            color=colours.get(name, "black"),
            label=f"{name}: sens {sensitivity:.2f}, spec {specificity:.2f}",
        )
    ax.set(xlim=(0.0, 1.0), ylim=(0.0, 1.01), xlabel="1 - specificity (false-positive rate)")
    ax.set(ylabel="sensitivity (true-positive rate)", title=_wrap(title), aspect="equal")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    return _save(fig, path)


def plot_reliability(before: Reliability | None, after: Reliability, path: Path, title: str) -> Path:
    """Reliability diagram: observed positive fraction against mean predicted probability per non-empty bin,
    with the diagonal of perfect calibration, ECE in the legend, and the bin counts underneath."""
    plt = _pyplot()
    fig, (ax, ax_count) = plt.subplots(
        2, 1, figsize=_TALL, sharex=True, gridspec_kw={"height_ratios": [3, 1], "hspace": 0.08}
    )
    ax.plot([0.0, 1.0], [0.0, 1.0], ls="--", lw=1.0, color="grey", label="perfect calibration")
    series = [("before", before, "tab:red", "s"), ("after", after, "tab:blue", "o")]
    for name, rel, colour, marker in series:
        if rel is None:
            continue
        filled = rel.bin_count > 0
        ax.plot(
            rel.bin_confidence[filled],
            rel.bin_accuracy[filled],
            marker=marker,
            ms=5,
            lw=1.4,
            color=colour,
            label=f"{name} (ECE {rel.ece:.3f})",
        )
        edges = rel.bin_edges
        # before: outlined so the calibrated counts stay visible on top of it
        ax_count.bar(
            edges[:-1],
            rel.bin_count,
            width=np.diff(edges),
            align="edge",
            color=colour if name == "after" else "none",
            edgecolor=colour,
            alpha=0.6 if name == "after" else 1.0,
            label=name,
        )
    ax.set(xlim=(0.0, 1.0), ylim=(0.0, 1.0), ylabel="observed positive fraction", title=_wrap(title))
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize=8)
    ax_count.set(xlabel="mean predicted probability", ylabel="cases")
    if before is not None:
        ax_count.legend(loc="upper center", fontsize=7, ncols=2)
    ax_count.grid(alpha=0.3)
    fig.subplots_adjust(left=0.15, right=0.95, top=0.93, bottom=0.09)
    return _save(fig, path)


def plot_score_histogram(
    normal_scores: np.ndarray,
    abnormal_scores: np.ndarray,
    threshold: float,
    path: Path,
    title: str,
    xlabel: str,
) -> Path:
    """Overlaid anomaly-score histograms of normal and abnormal cases, with the decision threshold.

    Densities rather than counts, since abnormal cases are usually far fewer and would otherwise vanish.
    """
    normal = np.asarray(normal_scores, dtype=np.float64).ravel()
    abnormal = np.asarray(abnormal_scores, dtype=np.float64).ravel()
    if normal.size == 0 or abnormal.size == 0:
        raise ValueError("plot_score_histogram needs at least one normal and one abnormal score")
    both = np.concatenate([normal, abnormal])
    if not np.isfinite(both).all():
        raise ValueError("scores contain non-finite values")
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=_SQUARE)
    bins = np.histogram_bin_edges(both, bins=40)  # shared edges, so the two shapes are comparable
    ax.hist(normal, bins=bins, density=True, alpha=0.55, color="tab:blue", label=f"normal (n={normal.size})")
    ax.hist(abnormal, bins=bins, density=True, alpha=0.55, color="tab:red", label=f"abnormal (n={abnormal.size})")
    ax.axvline(threshold, color="black", ls="--", lw=1.4, label=f"threshold {threshold:.3g}")
    ax.set(xlabel=xlabel, ylabel="density", title=_wrap(title))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, path)
