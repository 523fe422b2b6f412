"""The annotated patch set (paper section III.A): per image, one patch centred on each lesion and one random
background patch from the rest of the breast, in five classes.

Stored like the tiles: ``DIR/annotated_p<P>/patches.u16`` (``(N, P, P)`` memory map) and ``patches.csv``.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from .layout import DataError, PreparedDataset, read_mask
from ..io import atomic_path, write_csv
from .tiles import ImageStore, build_lock

CLASSES = ("background", "malignant mass", "benign mass", "malignant calcification", "benign calcification")


def patch_class(kind: str, pathology: str) -> int:
    """Index in :data:`CLASSES` of a lesion of ``kind`` (mass/calc) and ``pathology`` (malignant/benign)."""
    return {("mass", "malignant"): 1, ("mass", "benign"): 2, ("calc", "malignant"): 3, ("calc", "benign"): 4}[
        (kind, pathology)]


def clip_corner(center: int, patch: int, size: int) -> int:
    """The first row (column) of a ``patch`` window centred on ``center``, moved inside ``size``."""
    return int(np.clip(center - patch // 2, 0, size - patch))


def build_annotated_patches(data_dir: str | os.PathLike, patch: int, seed: int = 0,
                            max_background: float = 0.2, progress: bool = True) -> Path:
    """Write the annotated patch set of ``data_dir`` at side ``patch``; returns its directory (reused if present,
    built under a lock against parallel builders). Needs the image store (:meth:`ImageStore.build`)."""
    out = Path(data_dir) / f"annotated_p{patch}"
    if (out / "patches.csv").is_file():
        return out
    with build_lock(data_dir, f"annotated_p{patch}"):
        if not (out / "patches.csv").is_file():
            _build_annotated(data_dir, patch, seed, max_background, progress)
    return out


def _build_annotated(data_dir, patch: int, seed: int, max_background: float, progress: bool) -> None:
    ds = PreparedDataset(data_dir)
    store = ImageStore(data_dir)
    out = ds.root / f"annotated_p{patch}"
    n, h, w = store.images.shape
    rng = np.random.default_rng(seed)
    pos = {iid: k for k, iid in enumerate(store.image_ids)}
    rows: list[dict] = []
    crops: list[np.ndarray] = []
    split = ds.images.set_index("image_id").split
    for image_id in tqdm(store.image_ids, desc=f"annotated patches {patch}px", disable=not progress):
        k = pos[image_id]
        img = store.images[k]
        lesions = ds.lesions.loc[ds.lesions.image_id == image_id]
        lesion_union = np.zeros((h, w), bool)
        for _, les in lesions.iterrows():
            m = read_mask(ds.root / les.mask_path)
            if m.shape != (h, w):
                raise DataError(f"{ds.root / les.mask_path}: mask size {m.shape} differs from image {(h, w)}")
            lesion_union |= m
            if not m.any():
                continue
            rr, cc = np.nonzero(m)
            r0, c0 = clip_corner(int(rr.mean()), patch, h), clip_corner(int(cc.mean()), patch, w)
            crops.append(np.asarray(img[r0 : r0 + patch, c0 : c0 + patch]))
            rows.append({"image_id": image_id, "lesion_id": les.lesion_id, "cls": patch_class(les.kind, les.pathology),
                         "row": r0, "col": c0})
        breast = np.asarray(store.masks[k]) > 0
        ys, xs = np.nonzero(breast)
        for _ in range(100):  # a random breast patch away from every lesion
            j = rng.integers(len(ys))
            r0, c0 = clip_corner(ys[j], patch, h), clip_corner(xs[j], patch, w)
            window = (slice(r0, r0 + patch), slice(c0, c0 + patch))
            if 1 - breast[window].mean() <= max_background and not lesion_union[window].any():
                crops.append(np.asarray(img[window]))
                rows.append({"image_id": image_id, "lesion_id": "", "cls": 0, "row": r0, "col": c0})
                break
    table = pd.DataFrame(rows)
    table["class_name"] = [CLASSES[c] for c in table.cls]
    table["split"] = split.loc[table.image_id].to_numpy()
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / "patches.u16") as tmp:
        arr = np.memmap(tmp, dtype=np.uint16, mode="w+", shape=(len(crops), patch, patch))
        arr[:] = np.stack(crops)
        arr.flush()
        del arr
    write_csv(out / "patches.csv", table)  # written last: its presence means the set is complete


class AnnotatedPatches(torch.utils.data.Dataset):
    """Annotated patches of one split as ``(x, class)`` with ``x`` a float ``(1, P, P)`` tensor in [0, 1]."""

    def __init__(self, data_dir: str | os.PathLike, patch: int, split: str | None = None):
        d = Path(data_dir) / f"annotated_p{patch}"
        if not (d / "patches.csv").is_file():
            raise DataError(f"{d}: no annotated patch set of {patch} px; build it with "
                            f"`mammossl tiles --data {data_dir} --annotated --annotated-size {patch}`")
        table = pd.read_csv(d / "patches.csv", dtype={"image_id": str, "lesion_id": str}, keep_default_na=False)
        arr = np.memmap(d / "patches.u16", dtype=np.uint16, mode="r", shape=(len(table), patch, patch))
        keep = np.ones(len(table), bool) if split is None else (table.split == split).to_numpy()
        self.table = table.loc[keep].reset_index(drop=True)
        self.pos = np.nonzero(keep)[0]
        self.arr = arr
        self.labels = torch.as_tensor(self.table.cls.to_numpy().copy(), dtype=torch.long)

    def __len__(self) -> int:
        return len(self.table)

    def __getitem__(self, i):
        x = torch.from_numpy(np.asarray(self.arr[self.pos[i]], dtype=np.float32) / 65535.0).unsqueeze(0)
        return x, self.labels[i]

    def tensors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """All patches of the split at once: ``(N, 1, P, P)`` float and ``(N,)`` labels."""
        x = torch.from_numpy(np.asarray(self.arr[self.pos], dtype=np.float32) / 65535.0).unsqueeze(1)
        return x, self.labels
