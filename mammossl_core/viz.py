"""Figures shared by the README, the notebooks and the command line (seaborn/matplotlib)."""
from __future__ import annotations

import os

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
