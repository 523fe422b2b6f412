"""Figures shared by the README, the notebooks and the command line (seaborn/matplotlib)."""
from __future__ import annotations

import json
import os
from pathlib import Path

import matplotlib

matplotlib.use(os.environ.get("MPLBACKEND", "Agg"))
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def montage(dataset, n: int = 8, seed: int = 0, outline: bool = True, ncols: int = 4):
    """Grid of whole images from a :class:`~mammossl_core.data.layout.PreparedDataset`, lesion masks outlined.

    Malignant lesions are outlined in red, benign ones in yellow. Returns the matplotlib figure.
    """
    imgs = dataset.images
    rng = np.random.default_rng(seed)
    # show lesions of both kinds first, then normals
    order = list(imgs.index[imgs.image_id.isin(dataset.lesions.image_id)]) + list(
        imgs.index[~imgs.image_id.isin(dataset.lesions.image_id)])
    pick = order[: max(0, n - 2)] + list(rng.choice(order[n - 2:], size=min(2, len(order) - n + 2), replace=False))
    nrows = int(np.ceil(len(pick) / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(3 * ncols, 3.9 * nrows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, i in zip(axes.flat, pick):
        row = imgs.loc[i]
        img = dataset.load_image(row.image_id)
        ax.imshow(img, cmap="gray", vmin=0, vmax=65535)
        title = f"{row.image_id}\nlabel={row.label}"
        if outline:
            for _, les in dataset.lesions.loc[dataset.lesions.image_id == row.image_id].iterrows():
                from .data.layout import read_mask

                m = read_mask(dataset.root / les.mask_path)
                ax.contour(m, levels=[0.5], colors="red" if les.pathology == "malignant" else "yellow",
                           linewidths=0.8)
        ax.set_title(title, fontsize=8)
    fig.tight_layout()
    return fig


def pipeline_figure(path=None):
    """The patch-to-whole-image pipeline (paper Fig. 1) as boxes and arrows; saved to ``path`` if given."""
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

    fig, ax = plt.subplots(figsize=(11, 3.2))
    ax.set_xlim(0, 11)
    ax.set_ylim(0, 3.2)
    ax.axis("off")
    boxes = [
        (0.1, "whole mammograms\n(16-bit, unlabeled)", "#dde8f5"),
        (2.3, "tiled patches\n50% overlap,\n<= 20% background", "#dde8f5"),
        (4.5, "SSL pretraining\nSimCLR / BYOL / SwAV\n(two augmented views)", "#f5e6d3"),
        (6.7, "encoder runs fully\nconvolutionally: grid\nH (r x c x m)", "#e3f0dc"),
        (8.9, "pooling GAP / MIP / SA\n+ linear layer\n-> malignancy", "#f3dcdc"),
    ]
    for x, text, color in boxes:
        ax.add_patch(FancyBboxPatch((x, 0.9), 1.9, 1.4, boxstyle="round,pad=0.05", fc=color, ec="0.3"))
        ax.text(x + 0.95, 1.6, text, ha="center", va="center", fontsize=9)
    for x in (2.0, 4.2, 6.4, 8.6):
        ax.add_patch(FancyArrowPatch((x + 0.05, 1.6), (x + 0.28, 1.6), arrowstyle="-|>", mutation_scale=14))
    ax.text(5.5, 0.35, "labels are used only after pretraining: whole-image labels for linear evaluation and finetuning",
            ha="center", fontsize=9, style="italic")
    ax.text(5.5, 2.85, "tiled-patch pretraining to whole-image classification (Miller et al., Fig. 1)", ha="center",
            fontsize=10, weight="bold")
    if path is not None:
        fig.savefig(path, dpi=110, bbox_inches="tight")
    return fig


def weight_change_figure(summaries: dict):
    """Bars of the relative weight change ``||w - w0|| / ||w0||`` of each encoder layer during pretraining, one
    panel per method (``summaries``: method -> the run's ``summary.json``)."""
    data = {m: json.loads(Path(p).read_text()).get("weight_change", {}) for m, p in summaries.items()}
    fig, axes = plt.subplots(1, len(data), figsize=(3.2 * len(data), 3.2), sharey=True, squeeze=False)
    for ax, (m, wc) in zip(axes[0], data.items()):
        ax.bar(range(len(wc)), list(wc.values()), color="tab:blue")
        ax.set(title=f"{m} ({len(wc)} weight tensors)", xlabel="layer (input to output)", xticks=[])
        if wc:
            ax.axhline(min(wc.values()), color="grey", ls=":", lw=0.8)
    axes[0, 0].set_ylabel("relative change during pretraining")
    fig.tight_layout()
    return fig
