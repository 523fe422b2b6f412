"""What the evaluation protocols train and score on: the labelled whole images of a prepared dataset, with a
train/val/test column (the default split or a cross-validation fold), and patient-level label fractions (Fig. 5)."""
from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split

from .data.layout import DataError, PreparedDataset
from .data.tiles import ImageStore


@dataclass
class EvalData:
    """Whole images of a prepared dataset (from its image store) with labels and a train/val/test column."""

    root: Path
    store: ImageStore
    table: pd.DataFrame  # image_id, patient_id, label, split, pos (row in the store)

    def idx(self, split: str) -> np.ndarray:
        return np.nonzero((self.table.split == split).to_numpy())[0]

    def images(self, rows: np.ndarray, device) -> tuple[torch.Tensor, torch.Tensor]:
        """Images ``(B, 1, H, W)`` in [0, 1] and breast masks ``(B, H, W)`` of table rows ``rows``."""
        pos = self.table.pos.to_numpy()[rows]
        order = np.argsort(pos)  # memmap reads in file order, then restore the batch order
        x = np.asarray(self.store.images[pos[order]], dtype=np.float32)[np.argsort(order)] / 65535.0
        m = np.asarray(self.store.masks[pos[order]])[np.argsort(order)] > 0
        return torch.from_numpy(x).unsqueeze(1).to(device), torch.from_numpy(m).to(device)


def load_eval_data(data: str | os.PathLike, split: str = "split") -> EvalData:
    """Whole images of ``data`` with the split column ``split`` (``split`` or a fold of folds.csv: ``fold0``...).

    A dataset without labels (every label -1, e.g. a folder of unlabelled DICOMs) is refused with a
    :class:`DataError`: it serves pretraining only."""
    ds = PreparedDataset(data)
    if not ((ds.images.label >= 0) & ds.images.split.isin(["train", "val", "test"])).any():
        raise DataError(f"{ds.root / 'images.csv'}: no labelled image in a train/val/test split; an unlabelled "
                        "dataset serves pretraining only")
    store = ImageStore(data)
    table = ds.images[["image_id", "patient_id", "label", "split"]].copy()
    if split != "split":
        table["split"] = table.image_id.map(ds.split_column(split))
    pos = {iid: k for k, iid in enumerate(store.image_ids)}
    # unlabelled images (label -1, e.g. CMMD breasts the clinical table does not name) serve pretraining only
    table = table[table.image_id.isin(pos) & (table.label >= 0) & table.split.isin(["train", "val", "test"])]
    if table.empty:
        raise DataError(f"{ds.root / 'images.csv'}: no labelled image in a train/val/test split; an unlabelled "
                        "dataset serves pretraining only")
    # a test AUC or a fit on one class is meaningless: say which split of which file lacks one; a validation part
    # of one class (a handful of patients) leaves model selection without a score, which the protocols tolerate
    counts = table.groupby("split").label.nunique().reindex(["train", "val", "test"], fill_value=0)
    where = "images.csv" if split == "split" else f"folds.csv ({split})"
    if (counts[["train", "test"]] < 2).any():
        bad = " and ".join(counts[["train", "test"]][counts[["train", "test"]] < 2].index)
        raise DataError(f"{ds.root / where}: the {bad} part holds one class only; training and testing need benign "
                        f"and malignant images (too few patients for this split, or a split that is not stratified)")
    if counts["val"] < 2:
        warnings.warn(f"{ds.root / where}: the validation part holds one class only; validation AUCs are NaN and "
                      "select nothing (a head keeps its first trained epoch, finetuning its start)", stacklevel=2)
    table = table.reset_index(drop=True)
    table["pos"] = table.image_id.map(pos)
    return EvalData(Path(data), store, table)


def lesion_detector_ceiling(data: str | os.PathLike, split: str = "test") -> float:
    """Test AUC of a perfect lesion detector that cannot tell malignant from benign: it scores 1 on every image
    with any annotated lesion and 0 elsewhere. Whatever a model learns from "is there a lesion" alone stays below
    this; only telling malignant from benign lesions goes above it. NaN without lesion annotations (CMMD)."""
    ds = PreparedDataset(data)
    if ds.lesions.empty:
        return float("nan")
    t = load_eval_data(data).table
    t = t[t.split == split]
    has_lesion = t.image_id.isin(set(ds.lesions.image_id)).astype(float)
    return float(roc_auc_score(t.label, has_lesion)) if t.label.nunique() == 2 else float("nan")


def label_fraction_subset(table: pd.DataFrame, rows: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """A patient-level, label-stratified ``fraction`` of the training rows (paper Fig. 5)."""
    if not 0 < fraction <= 1:
        raise ValueError(f"label fraction {fraction} must be in (0, 1]")
    if fraction == 1:
        return rows
    sub = table.iloc[rows]
    patients = sub.groupby("patient_id").label.max()
    classes = patients.nunique()
    # at least one patient of each label, and at least one left out (small datasets)
    k = min(max(int(np.floor(fraction * len(patients))), classes), len(patients) - classes)
    if k < classes:
        raise DataError(f"label fraction {fraction}: {len(patients)} training patients are too few to draw a "
                        "stratified subset")
    keep, _ = train_test_split(patients.index.to_numpy(), train_size=k, random_state=seed,
                               stratify=patients.to_numpy())
    return rows[sub.patient_id.isin(set(keep)).to_numpy()]
