"""Patient-level, label-stratified splits (paper section III and VI).

All images of a patient land in the same set. A ratio such as 7:1:2 is realised by cutting the patients into
``sum(ratio)`` stratified groups with scikit-learn's :class:`~sklearn.model_selection.StratifiedGroupKFold` and
handing out whole groups; k-fold cross-validation rotates the same groups (each fold 3:1:1 for CMMD).
"""
from __future__ import annotations

import os

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedGroupKFold

from ..io import write_csv

SPLITS = ("train", "val", "test")


def _parts(images: pd.DataFrame, n_parts: int, seed: int) -> np.ndarray:
    """Assign each image to one of ``n_parts`` patient-level, label-stratified parts."""
    n_patients = images.patient_id.nunique()
    if n_patients < n_parts:
        raise ValueError(f"{n_patients} patients cannot be split into {n_parts} parts; need at least {n_parts}")
    # stratify on the patient's label so that a patient's images share one stratum
    labels = images.groupby("patient_id").label.transform("max").to_numpy()
    part = np.full(len(images), -1)
    sgkf = StratifiedGroupKFold(n_splits=n_parts, shuffle=True, random_state=seed)
    for k, (_, test_idx) in enumerate(sgkf.split(np.zeros(len(images)), labels, images.patient_id.to_numpy())):
        part[test_idx] = k
    return part


def assign_splits(images: pd.DataFrame, ratios: tuple[int, int, int] = (7, 1, 2), seed: int = 0) -> pd.Series:
    """Return a ``train``/``val``/``test`` column for ``images`` (needs ``patient_id`` and ``label``).

    ``ratios`` are integers, e.g. ``(7, 1, 2)`` for CBIS-DDSM or ``(3, 1, 1)`` for CMMD.
    """
    if len(ratios) != 3 or min(ratios) < 1:
        raise ValueError(f"ratios={ratios}: need three positive integers (train, val, test)")
    part = _parts(images, int(sum(ratios)), seed)
    names = np.array(["train"] * ratios[0] + ["val"] * ratios[1] + ["test"] * ratios[2])
    return pd.Series(names[part], index=images.index, name="split")


def kfold_splits(images: pd.DataFrame, k: int = 5, seed: int = 0) -> pd.DataFrame:
    """k-fold cross-validation, each fold split 3:1:1 (paper section VI): one column ``fold<i>`` per fold.

    Fold ``i`` tests on part ``i``, validates on part ``i+1`` and trains on the rest.
    """
    if k < 3:
        raise ValueError(f"k={k}: cross-validation with train/val/test needs k >= 3")
    part = _parts(images, k, seed)
    out = pd.DataFrame({"image_id": images.image_id.to_numpy(), "patient_id": images.patient_id.to_numpy()})
    for i in range(k):
        col = np.full(len(images), "train", dtype=object)
        col[part == i] = "test"
        col[part == (i + 1) % k] = "val"
        out[f"fold{i}"] = col
    return out


def write_folds(path: str | os.PathLike, images: pd.DataFrame, k: int, seed: int) -> None:

    write_csv(path, kfold_splits(images, k, seed))
