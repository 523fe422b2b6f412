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


def anatomy_figure(seed: int = 0, profile: str = "paper", domain: str = "ddsm", density: str = "c"):
    """A synthetic CC and MLO view of one breast at ``profile``'s size, each beside a drawing of what the generator
    put where (subcutaneous fat, fibroglandular tissue, strands and ducts, lobule septa, pectoral muscle, skin line,
    nipple), so that a reader can tell which part of the picture is which."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    from .data.synthetic import SynthParams, draw_anatomy, render_image

    params = SynthParams.of(profile, domain)
    rng = np.random.default_rng(seed)
    anatomy = draw_anatomy(rng, density)
    colours = {"subcutaneous fat": (0.95, 0.85, 0.35), "fibroglandular tissue": (0.85, 0.35, 0.55),
               "strands and ducts": (0.2, 0.6, 0.95), "lobule septa (Cooper's ligaments)": (0.3, 0.8, 0.4),
               "pectoral muscle": (0.55, 0.3, 0.15), "skin line": (0.75, 0.75, 0.75), "nipple": (1.0, 0.5, 0.0)}
    fig, axes = plt.subplots(1, 4, figsize=(13, 4.6))
    for k, view in enumerate(("CC", "MLO")):
        parts: dict = {}
        img, breast, _ = render_image(params, view, density, [], rng, anatomy, parts)
        drawing = np.zeros(img.shape + (3,))
        drawing[breast] = (0.22, 0.22, 0.22)  # fat (lobule interiors)
        for name, colour in colours.items():  # later parts drawn over earlier ones
            if name in parts:
                drawing[parts[name]] = colour
        cols = np.nonzero(breast.any(0))[0]
        right = min(img.shape[1], int(cols.max() * 1.1) + 1) if len(cols) else img.shape[1]
        axes[2 * k].imshow(img[:, :right] / 65535, cmap="gray", vmin=0, vmax=1)
        axes[2 * k].set_title(f"synthetic {view} ({domain}, density {density})")
        axes[2 * k + 1].imshow(drawing[:, :right])
        axes[2 * k + 1].set_title(f"what is where ({view})")
    for ax in axes:
        ax.set_axis_off()
    handles = [Patch(color=(0.22, 0.22, 0.22), label="fat lobules")]
    handles += [Patch(color=c, label=n) for n, c in colours.items()]
    fig.legend(handles=handles, loc="lower center", ncol=4, frameon=False, fontsize=9)
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    return fig
