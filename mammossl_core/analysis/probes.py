"""Linear probes of patch embeddings for the synthetic generator's latent factors: what an encoder's features
encode about a finding, whatever the whole-image AUC.

The synthetic data know why each finding looks as it does (``lesions.csv``: kind and shape; ``mimics.csv``: the
kind of a normal-tissue finding that looks like a lesion). Each :data:`FACTORS` entry is one such property on the
findings it is defined for (mass margin on masses, calcification form on calcifications, ...). A finding is a crop
of the annotated patch size centred on it; a probe is an L2 logistic regression (L-BFGS, fitted to convergence,
classes weighted equally) on the standardised embeddings of the training split's findings, its regularisation chosen
by patient-grouped cross-validation inside the training split, scored by balanced accuracy on the test split
(chance ``1 / classes``). A randomly initialised encoder of the same architecture is the floor; each encoder's
difference from it is a paired bootstrap over test patients.

Real datasets carry no latent factors (CBIS-DDSM's shape vocabulary is the radiologist's, CMMD has no masks):
:func:`findings` raises :class:`~mammossl_core.data.layout.DataError` without them.

>>> [f.name for f in FACTORS][:2]
['lesion or mimic', 'mass or calcification']
"""
from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score
from sklearn.model_selection import GroupKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from torch import nn

from ..config import EvalConfig
from ..data.layout import DataError, PreparedDataset
from ..data.patches import clip_corner
from ..data.tiles import ImageStore
from ..metrics import PairedDifference, paired_difference


@dataclass(frozen=True)
class Factor:
    """A latent factor: ``label`` maps the findings table to each finding's class, NaN where it is not defined."""

    name: str
    label: Callable[[pd.DataFrame], pd.Series]


FACTORS: tuple[Factor, ...] = (
    Factor("lesion or mimic", lambda t: t.source),
    Factor("mass or calcification", lambda t: t.kind.where(t.source == "lesion")),
    Factor("mass margin (circumscribed or not)",
           lambda t: t["shape"].isin(["round", "oval"]).map({True: "circumscribed", False: "ill-defined"})
           .where((t.kind == "mass") & (t["shape"] != "distortion"))),
    Factor("spiculation (masses)",
           lambda t: t["shape"].isin(["spiculated", "distortion"]).map({True: "spiculated", False: "smooth"})
           .where(t.kind == "mass")),
    Factor("calcification form", lambda t: t["shape"].where(t.kind == "calc")),
    Factor("mimic kind", lambda t: t.kind.where(t.source == "mimic")),
)


#: the probes' inverse regularisation strengths, strongest first: those of the converged linear layer
CS = EvalConfig().linear_head_cs


@dataclass(frozen=True)
class Probe:
    """One encoder's probe of one factor: test balanced accuracy, chance, sizes and the paired difference from the
    random encoder (None for the random encoder itself, or when the factor cannot be probed)."""

    factor: str
    encoder: str
    balanced_accuracy: float
    chance: float
    classes: int
    n_train: int
    n_test: int
    vs_random: PairedDifference | None


def has_factors(data: str | os.PathLike) -> bool:
    """Whether ``data`` records the latent factors (a synthetic dataset: lesion shapes and mimics)."""
    ds = PreparedDataset(data)
    return "shape" in ds.lesions.columns and not ds.mimics.empty


def findings(data: str | os.PathLike) -> pd.DataFrame:
    """Every lesion and mimic of the labelled train/test images: ``image_id, patient_id, split, source (lesion |
    mimic), kind, shape, center_row, center_col``."""
    ds = PreparedDataset(data)
    if not has_factors(data):
        raise DataError(f"{ds.root}: no latent factors (lesions.csv without shapes or no mimics.csv); the probes "
                        "need a synthetic dataset")
    les = ds.lesions.assign(source="lesion")
    mim = ds.mimics.assign(source="mimic", shape="")
    cols = ["image_id", "source", "kind", "shape", "center_row", "center_col"]
    t = pd.concat([les[cols], mim[cols]], ignore_index=True)
    images = ds.images.set_index("image_id")
    t["patient_id"], t["split"] = t.image_id.map(images.patient_id), t.image_id.map(images.split)
    return t[t.split.isin(["train", "test"])].reset_index(drop=True)


def crops(data: str | os.PathLike, table: pd.DataFrame, patch: int) -> torch.Tensor:
    """``(N, 1, patch, patch)`` float crops in [0, 1] of the image store, centred on each row's finding (moved inside
    the image at the borders, as the annotated patches)."""
    store = ImageStore(data)
    pos = {iid: k for k, iid in enumerate(store.image_ids)}
    _, h, w = store.images.shape
    out = np.empty((len(table), patch, patch), np.float32)
    for i, (iid, r, c) in enumerate(zip(table.image_id, table.center_row, table.center_col)):
        r0, c0 = clip_corner(int(r), patch, h), clip_corner(int(c), patch, w)
        out[i] = store.images[pos[iid], r0:r0 + patch, c0:c0 + patch] / 65535.0
    return torch.from_numpy(out).unsqueeze(1)


@torch.no_grad()
def embed(net: nn.Module, x: torch.Tensor, device="cpu", batch: int = 256) -> np.ndarray:
    """The encoder's ``(N, m)`` embeddings of the crops, in eval mode."""
    net = net.to(device).eval()
    return torch.cat([net(x[s:s + batch].to(device).expand(-1, 3, -1, -1)).float().cpu()
                      for s in range(0, len(x), batch)]).numpy()


def _balanced_accuracy(y: np.ndarray, pred: np.ndarray) -> float:
    with warnings.catch_warnings():  # a fold or a bootstrap resample may lack a class that a probe predicts
        warnings.filterwarnings("ignore", "y_pred contains classes not in y_true", UserWarning)
        warnings.filterwarnings("ignore", "A single label was found", UserWarning)
        return float(balanced_accuracy_score(y, pred))


def _fit_predict(emb: np.ndarray, y: np.ndarray, groups: np.ndarray, train: np.ndarray, folds: int) -> np.ndarray:
    """Predicted classes of every row by the probe fitted on the ``train`` rows. Its inverse regularisation ``C`` is
    the best mean balanced accuracy over patient-grouped folds of the training rows (ties: the stronger
    regularisation). Written out rather than ``LogisticRegressionCV`` so that the folds are grouped by patient and the
    arguments do not move with scikit-learn's deprecations."""
    def probe(c: float):
        return make_pipeline(StandardScaler(), LogisticRegression(C=c, class_weight="balanced", max_iter=5000))

    x, yt, g = emb[train], y[train], groups[train]
    splits = list(GroupKFold(n_splits=folds).split(x, yt, g))
    scores = [np.mean([_balanced_accuracy(yt[va], probe(c).fit(x[tr], yt[tr]).predict(x[va]))
                       for tr, va in splits]) for c in CS]
    return probe(CS[int(np.argmax(scores))]).fit(x, yt).predict(emb)


def probe_factors(data: str | os.PathLike, encoders: dict[str, nn.Module], random: str, patch: int,
                  device="cpu", seed: int = 0, folds: int = EvalConfig().linear_head_folds, n_boot: int = 2000,
                  min_per_class: int = 5) -> list[Probe]:
    """Probe every factor of :data:`FACTORS` in each encoder's embeddings of the findings (``encoders`` maps a name
    to a ``(B, 3, p, p) -> (B, m)`` module; ``random`` names the floor among them). A factor with fewer than
    ``min_per_class`` findings of a class in the training or test split is left out."""
    if random not in encoders:
        raise ValueError(f"random={random!r} is not one of the encoders {list(encoders)}")
    table = findings(data)
    x = crops(data, table, patch)
    emb = {name: embed(net, x, device) for name, net in encoders.items()}
    groups = table.patient_id.to_numpy()
    out = []
    for factor in FACTORS:
        lab = factor.label(table)
        rows = lab.notna().to_numpy()
        classes = sorted(lab[rows].unique())
        y = lab[rows].map({c: k for k, c in enumerate(classes)}).to_numpy()
        split = table.split.to_numpy()[rows]
        train, test = split == "train", split == "test"
        counts = [min((y[train] == k).sum(), (y[test] == k).sum()) for k in range(len(classes))]
        if len(classes) < 2 or min(counts) < min_per_class or len(np.unique(groups[rows][train])) < folds:
            continue
        pred = {name: _fit_predict(e[rows], y, groups[rows], train, folds) for name, e in emb.items()}
        for name, p in pred.items():
            vs = None if name == random else paired_difference(
                y[test], p[test], pred[random][test], _balanced_accuracy, n_boot, seed=seed,
                groups=groups[rows][test])
            out.append(Probe(factor.name, name, _balanced_accuracy(y[test], p[test]), 1 / len(classes),
                             len(classes), int(train.sum()), int(test.sum()), vs))
    return out


def probe_table(probes: list[Probe]) -> pd.DataFrame:
    """One row per factor and encoder, the difference from the random encoder with its interval."""
    return pd.DataFrame([{"factor": p.factor, "encoder": p.encoder, "balanced accuracy": p.balanced_accuracy,
                          "chance": p.chance, "minus random [95% CI]": "" if p.vs_random is None else str(p.vs_random),
                          "n train / test": f"{p.n_train} / {p.n_test}"} for p in probes])
