"""SwAV prototype analysis (paper V.E, Fig. 6, Supp. Figs. 4-5): assign patch embeddings to prototypes,
project embeddings and prototypes with UMAP, show the patches nearest each prototype, and count how the
annotated classes spread over the prototypes."""
from __future__ import annotations

import json
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns
import pandas as pd
import torch
import torch.nn.functional as F

from ..config import resolve
from ..data.layout import PreparedDataset
from ..data.patches import CLASSES, AnnotatedPatches
from ..data.tiles import ImageStore, TileDataset
from ..io import write_csv
from ..loading import load_method, profile_of


def load_swav(path, device="cpu"):
    """The SwAV model of a pretraining checkpoint or run directory (:func:`~mammossl_core.loading.load_method`)."""
    return load_method(path, method="swav", device=device)[0]


def usage(run) -> dict:
    """The prototype usage that pretraining wrote to the run's ``summary.json``
    (:meth:`SwAV.summary_stats <mammossl_core.ssl.swav.SwAV.summary_stats>`)."""
    path = Path(run) / "summary.json"
    s = json.loads(path.read_text())
    if "prototype_entropy" not in s:
        raise KeyError(f"{path}: no prototype usage (a run of mammossl < 0.5, or not SwAV); pretrain it again")
    return s


@torch.no_grad()
def assign(model, x: torch.Tensor, batch: int = 512, device="cpu") -> tuple[np.ndarray, np.ndarray]:
    """:meth:`SwAV.assign <mammossl_core.ssl.swav.SwAV.assign>` of patches ``(N, 1, p, p)`` in batches:
    normalised projections ``(N, d)`` and soft prototype assignments ``(N, P)``."""
    model.eval()
    zs, qs = [], []
    for s in range(0, len(x), batch):
        z, q = model.assign(x[s:s + batch].to(device).expand(-1, 3, -1, -1))
        zs.append(z.cpu())
        qs.append(q.cpu())
    return torch.cat(zs).numpy(), torch.cat(qs).numpy()


def prototype_vectors(model) -> np.ndarray:
    w = model.prototypes.heads[0].weight.detach().cpu()
    return F.normalize(w, dim=1).numpy()


def umap_projection(z: np.ndarray, protos: np.ndarray, seed: int = 0, n_neighbors: int = 15):
    """2-D UMAP fitted on the embeddings ``z`` (paper Fig. 6A); each prototype is placed at the mean position of
    its ``n_neighbors`` nearest embeddings (umap-learn's ``transform`` starts from a weighted mean of the same
    neighbours' positions, then refines it). Prototypes lie far from every embedding and closer to each other, so a
    joint fit would pile them up in a cluster of their own. The exact nearest neighbours come from scikit-learn:
    umap-learn computes them for small sets by calling its numba metric once per pair from Python, and
    ``transform`` compiles a second numba pipeline (together ~20 of ~30 s on two cores for 2,000 tiles). Returns
    the coordinates of ``z`` and of ``protos``."""
    import warnings

    import umap  # deliberately lazy: umap-learn compiles with numba on import (seconds), only this needs it
    from sklearn.neighbors import NearestNeighbors

    k = min(n_neighbors, len(z) - 1)
    nn = NearestNeighbors(n_neighbors=k).fit(z)
    dist, idx = nn.kneighbors(z)
    reducer = umap.UMAP(n_neighbors=k, random_state=seed, n_jobs=1, precomputed_knn=(idx, dist, None))
    with warnings.catch_warnings():  # no search index is passed: umap's transform is unavailable, and not needed
        warnings.filterwarnings("ignore", message="precomputed_knn.2. .knn_search_index. is not an NNDescent")
        e2 = reducer.fit_transform(z)
    return e2, e2[nn.kneighbors(protos, return_distance=False)].mean(1)


def nearest_patches(z: np.ndarray, protos: np.ndarray, k: int = 6) -> np.ndarray:
    """Indices ``(P, k)`` of the ``k`` embeddings closest (Euclidean) to each prototype (paper Fig. 6B)."""
    d = ((z[None, :, :] - protos[:, None, :]) ** 2).sum(-1)
    return np.argsort(d, axis=1)[:, :k]


def enrichment(assignments: np.ndarray, classes: np.ndarray, class_names) -> pd.DataFrame:
    """Prototype-by-class counts of hard assignments, normalised per class (Supp. Fig. 4)."""
    hard = assignments.argmax(1)
    P = assignments.shape[1]
    table = pd.crosstab(pd.Categorical(hard, categories=range(P)),
                        pd.Categorical([class_names[c] for c in classes], categories=list(class_names)),
                        dropna=False)
    table.index.name, table.columns.name = "prototype", "class"
    return table / table.sum(axis=0).replace(0, 1)


def tile_sample(data, tile: int, n: int, seed: int = 0) -> torch.Tensor:
    """``n`` tiled patches of side ``tile`` drawn without replacement (seeded) from the image store of ``data``."""
    tiles = TileDataset(ImageStore(data), tile)
    n = min(n, len(tiles))
    return tiles[np.sort(np.random.default_rng(seed).choice(len(tiles), n, replace=False))]


def umap_figure(e2: np.ndarray, p2: np.ndarray, hard: np.ndarray):
    """Embeddings coloured by their prototype, prototypes in black and numbered (paper Fig. 6A)."""
    fig, ax = plt.subplots(figsize=(6, 5))
    ax.scatter(e2[:, 0], e2[:, 1], c=hard, cmap="tab20", s=3)
    ax.scatter(p2[:, 0], p2[:, 1], c="black", s=25)
    for k, (a, b) in enumerate(p2):
        ax.annotate(str(k), (a, b), fontsize=7)
    ax.set(title=f"UMAP of {len(e2)} tile embeddings, prototypes in black", xlabel="UMAP 1", ylabel="UMAP 2")
    fig.tight_layout()
    return fig


def nearest_figure(x: torch.Tensor, near: np.ndarray):
    """One row per prototype with its nearest patches (paper Fig. 6B)."""
    P, k = near.shape
    fig, axes = plt.subplots(P, k, figsize=(k, P * 1.0), squeeze=False)
    for i in range(P):
        for j in range(k):
            axes[i, j].imshow(x[near[i, j], 0], cmap="gray", vmin=0, vmax=1)
            axes[i, j].axis("off")
        axes[i, 0].set_title(f"prototype {i}", fontsize=6, loc="left")
    fig.tight_layout()
    return fig


def class_figure(q: np.ndarray, classes: np.ndarray, class_names):
    """Class distribution over prototypes (Supp. Fig. 4) and prototypes per class (Supp. Fig. 5)."""

    enr = enrichment(q, classes, class_names)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    sns.heatmap(enr.T, cmap="magma", ax=axes[0], cbar_kws={"label": "share of the class"})
    axes[0].set(title="class distribution over prototypes (Supp. Fig. 4)", xlabel="prototype", ylabel="")
    prop = pd.crosstab(pd.Categorical([class_names[c] for c in classes], categories=list(class_names)),
                       q.argmax(1), normalize="index")
    sns.heatmap(prop, cmap="viridis", ax=axes[1], cbar_kws={"label": "proportion"})
    axes[1].set(title="prototypes per class (Supp. Fig. 5)", xlabel="prototype", ylabel="")
    fig.tight_layout()
    return fig


def annotated_assignments(model, data, profile, device="cpu"):
    """Prototype assignments of the annotated patch set, resized to the pretraining tile size: ``(q, classes)``."""
    prof = resolve(profile)
    x, y = AnnotatedPatches(data, prof.data.annotated_patch).tensors()
    x = F.interpolate(x, size=(prof.data.tile_size, prof.data.tile_size), mode="bilinear", antialias=True)
    _, q = assign(model, x, device=device)
    return q, y.numpy()


def report(checkpoint, data, out, profile=None, tiles: int = 2000, nearest: int = 6, seed: int = 0,
           device="cpu") -> dict:
    """The whole prototype analysis of a SwAV checkpoint on ``data``: writes ``umap.png``, ``nearest.png``,
    ``assignments.csv`` (tile sample), and, where the dataset has lesions, ``enrichment.csv`` and ``classes.png``
    into ``out``."""
    prof = resolve(profile or profile_of(checkpoint))
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model = load_swav(checkpoint, device)
    x = tile_sample(data, prof.data.tile_size, tiles, seed)
    z, q = assign(model, x, device=device)
    protos = prototype_vectors(model)
    e2, p2 = umap_projection(z, protos, seed=seed)
    umap_figure(e2, p2, q.argmax(1)).savefig(out / "umap.png", dpi=110, bbox_inches="tight")
    nearest_figure(x, nearest_patches(z, protos, nearest)).savefig(out / "nearest.png", dpi=110, bbox_inches="tight")
    write_csv(out / "assignments.csv", pd.DataFrame({"prototype": q.argmax(1), "umap1": e2[:, 0], "umap2": e2[:, 1]}))
    res = {"checkpoint": str(checkpoint), "tiles": int(len(x)), "prototypes": int(len(protos)),
           "used_prototypes": int(len(np.unique(q.argmax(1))))}
    if len(PreparedDataset(data).lesions):
        qa, ya = annotated_assignments(model, data, prof, device)
        write_csv(out / "enrichment.csv", enrichment(qa, ya, CLASSES).reset_index())
        class_figure(qa, ya, CLASSES).savefig(out / "classes.png", dpi=110, bbox_inches="tight")
    return res
