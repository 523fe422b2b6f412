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
