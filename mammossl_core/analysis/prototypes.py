"""SwAV prototype analysis (paper V.E, Fig. 6, Supp. Figs. 4-5): assign patch embeddings to prototypes,
project embeddings and prototypes with UMAP, show the patches nearest each prototype, and count how the
annotated classes spread over the prototypes."""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from .. import checkpoint as ck


def load_swav(path, device="cpu"):
    """A SwAV model from a pretraining checkpoint (its own configuration)."""
    from ..config import PretrainConfig
    from ..ssl.swav import SwAV

    state = ck.load(path, method="swav")
    cfg = PretrainConfig(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in state["config"].items()})
    model = SwAV(cfg)
    model.load_state_dict(state["model"])
    return model.to(device).eval()


@torch.no_grad()
def assign(model, x: torch.Tensor, batch: int = 512, device="cpu") -> tuple[np.ndarray, np.ndarray]:
    """Normalised projections ``(N, d)`` and soft prototype assignments ``(N, P)`` of patches ``(N, 1, p, p)``."""
    zs, qs = [], []
    for s in range(0, len(x), batch):
        v = x[s:s + batch].to(device).expand(-1, 3, -1, -1)
        z = F.normalize(model.projection(model.backbone(v)), dim=1)
        zs.append(z.cpu())
        qs.append(torch.softmax(model.prototypes(z) / model.cfg.swav_temperature, 1).cpu())
    return torch.cat(zs).numpy(), torch.cat(qs).numpy()


def prototype_vectors(model) -> np.ndarray:
    w = model.prototypes.heads[0].weight.detach().cpu()
    return F.normalize(w, dim=1).numpy()


def umap_projection(z: np.ndarray, protos: np.ndarray, seed: int = 0, n_neighbors: int = 15):
    """2-D UMAP fitted on the embeddings; prototypes mapped with the same projection (paper Fig. 6A)."""
    import umap

    reducer = umap.UMAP(n_neighbors=min(n_neighbors, len(z) - 1), random_state=seed, n_jobs=1)
    e2 = reducer.fit_transform(z)
    return e2, reducer.transform(protos)


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
    """``n`` tiled patches of side ``tile`` drawn without replacement (seeded) from the tile store of ``data``."""
    from ..data.tiles import TileDataset, TileStore

    tiles = TileDataset(TileStore(data), tile)
    n = min(n, len(tiles))
    return tiles[np.sort(np.random.default_rng(seed).choice(len(tiles), n, replace=False))]


def umap_figure(e2: np.ndarray, p2: np.ndarray, hard: np.ndarray):
    """Embeddings coloured by their prototype, prototypes in black and numbered (paper Fig. 6A)."""
    import matplotlib.pyplot as plt

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
    import matplotlib.pyplot as plt

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
    import matplotlib.pyplot as plt
    import seaborn as sns

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


def annotated_assignments(model, data, profile, seed: int = 0, device="cpu"):
    """Prototype assignments of the annotated patch set, resized to the pretraining tile size: ``(q, classes)``."""
    from ..config import get_profile
    from ..data.patches import AnnotatedPatches, build_annotated_patches

    prof = get_profile(profile) if isinstance(profile, str) else profile
    build_annotated_patches(data, prof.data.annotated_patch, seed=seed, progress=False)
    x, y = AnnotatedPatches(data, prof.data.annotated_patch).tensors()
    x = F.interpolate(x, size=(prof.data.tile_size, prof.data.tile_size), mode="bilinear", antialias=True)
    _, q = assign(model, x, device=device)
    return q, y.numpy()


def report(checkpoint, data, out, profile="tiny", tiles: int = 2000, nearest: int = 6, seed: int = 0,
           device="cpu") -> dict:
    """The whole prototype analysis of a SwAV checkpoint on ``data``: writes ``umap.png``, ``nearest.png``,
    ``assignments.csv`` (tile sample), and, where the dataset has lesions, ``enrichment.csv`` and ``classes.png``
    into ``out``."""
    from pathlib import Path

    from ..config import get_profile
    from ..data.layout import PreparedDataset, write_csv
    from ..data.patches import CLASSES

    prof = get_profile(profile) if isinstance(profile, str) else profile
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
        qa, ya = annotated_assignments(model, data, prof, seed, device)
        write_csv(out / "enrichment.csv", enrichment(qa, ya, CLASSES).reset_index())
        class_figure(qa, ya, CLASSES).savefig(out / "classes.png", dpi=110, bbox_inches="tight")
    return res
