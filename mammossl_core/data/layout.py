"""The prepared-dataset layout that every data source writes and every later step reads.

::

    DIR/dataset.json          source, generator/converter version, parameters, seed, counts
    DIR/images.csv            image_id, patient_id, laterality, view, label, path, split, ...
    DIR/lesions.csv           image_id, lesion_id, kind (mass|calc), pathology (malignant|benign), mask_path, ...
    DIR/mimics.csv            optional (synthetic data): image_id, mimic_id, kind, mask_path, ... of findings of
                              normal tissue that look like lesions (summation densities, vascular calcifications, ...)
    DIR/images/<id>.png       whole mammogram, 16-bit grayscale, breast on the left (chest wall at x = 0)
    DIR/masks/<id>_<k>.png    lesion (or mimic) mask, 8-bit 0/255, same size as its image

Every file is written under a temporary name and renamed, so a failure never leaves a half-written file.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from ..io import atomic_path, write_csv, write_json
from .splits import assign_splits, write_folds

IMAGE_COLUMNS = ["image_id", "patient_id", "laterality", "view", "label", "path", "split"]
LESION_COLUMNS = ["image_id", "lesion_id", "kind", "pathology", "mask_path"]
MIMIC_COLUMNS = ["image_id", "mimic_id", "kind", "mask_path", "contrast", "center_row", "center_col", "area_px"]
LAYOUT_VERSION = 1


class DataError(ValueError):
    """A data file is missing, unreadable or not in the expected format; the message names the file."""


def write_png16(path: str | os.PathLike, img: np.ndarray) -> None:
    """Write a 2-D uint16 array as a 16-bit grayscale PNG, atomically."""
    if img.dtype != np.uint16 or img.ndim != 2:
        raise ValueError(f"{path}: expected a 2-D uint16 array, got {img.dtype} {img.shape}")
    with atomic_path(path) as tmp:
        Image.fromarray(img).save(tmp, format="PNG")


def write_mask(path: str | os.PathLike, mask: np.ndarray) -> None:
    """Write a boolean mask as an 8-bit 0/255 PNG, atomically."""
    with atomic_path(path) as tmp:
        Image.fromarray(np.where(mask, 255, 0).astype(np.uint8)).save(tmp, format="PNG")


def read_png16(path: str | os.PathLike, allow_blank: bool = False) -> np.ndarray:
    """Read a 16-bit grayscale PNG into a uint16 array.

    Raises :class:`DataError` naming the file if it is missing, corrupt or truncated, not 16-bit grayscale,
    or all black (unless ``allow_blank``).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        with Image.open(path) as im:
            mode = im.mode
            im.load()
            arr = np.asarray(im)
    except (OSError, SyntaxError, ValueError) as e:  # PIL reports truncation and corruption as OSError
        raise DataError(f"{path}: corrupt or truncated PNG ({e})") from e
    if mode not in ("I;16", "I;16B", "I;16L", "I"):
        raise DataError(f"{path}: expected a 16-bit grayscale PNG, found PIL mode {mode!r}")
    if arr.dtype != np.uint16:
        if arr.min() < 0 or arr.max() > 65535:
            raise DataError(f"{path}: pixel values outside the 16-bit range")
        arr = arr.astype(np.uint16)
    if not allow_blank and int(arr.max()) == 0:
        raise DataError(f"{path}: image is all black")
    return arr


def read_mask(path: str | os.PathLike) -> np.ndarray:
    """Read an 8-bit lesion mask as a boolean array; :class:`DataError` naming the file on failure."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: mask file not found")
    try:
        with Image.open(path) as im:
            im.load()
            arr = np.asarray(im)
    except (OSError, SyntaxError, ValueError) as e:
        raise DataError(f"{path}: corrupt or truncated mask PNG ({e})") from e
    return arr > 0


class PreparedDataset:
    """A prepared dataset directory: validated tables and paths.

    >>> ds = PreparedDataset("data/synth")            # doctest: +SKIP
    >>> ds.images.query("split == 'train'").label.mean()  # doctest: +SKIP
    """

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        if not self.root.is_dir():
            raise DataError(f"{self.root}: prepared dataset directory not found")
        for name in ("images.csv", "lesions.csv", "dataset.json"):
            if not (self.root / name).is_file():
                raise DataError(f"{self.root / name}: missing; is {self.root} a prepared dataset?")
        self.meta = json.loads((self.root / "dataset.json").read_text())
        self.images = self._read_table("images.csv", IMAGE_COLUMNS, {"image_id": str, "patient_id": str})
        self.lesions = self._read_table("lesions.csv", LESION_COLUMNS, {"image_id": str, "lesion_id": str})
        if self.images.image_id.duplicated().any():
            dup = self.images.image_id[self.images.image_id.duplicated()].iloc[0]
            raise DataError(f"{self.root / 'images.csv'}: duplicate image_id {dup!r}")
        self.mimics = (self._read_table("mimics.csv", MIMIC_COLUMNS[:4], {"image_id": str, "mimic_id": str})
                       if (self.root / "mimics.csv").is_file() else pd.DataFrame(columns=MIMIC_COLUMNS))
        unknown = set(self.lesions.image_id) - set(self.images.image_id)
        if unknown:
            raise DataError(f"{self.root / 'lesions.csv'}: image_id(s) not in images.csv: {sorted(unknown)[:5]}")

    def _read_table(self, name: str, required: list[str], dtypes: dict) -> pd.DataFrame:
        path = self.root / name
        try:
            df = pd.read_csv(path, dtype=dtypes, keep_default_na=False, na_values=[""])
        except Exception as e:  # pandas raises many types for broken CSVs
            raise DataError(f"{path}: unreadable CSV ({e})") from e
        missing = [c for c in required if c not in df.columns]
        if missing:
            raise DataError(f"{path}: missing column(s) {missing}")
        return df

    @property
    def domain(self) -> str:
        return self.meta.get("domain", "ddsm")

    def image_path(self, row_or_path) -> Path:
        p = row_or_path if isinstance(row_or_path, str) else row_or_path["path"]
        return self.root / p

    def load_image(self, image_id: str) -> np.ndarray:
        row = self.images.loc[self.images.image_id == image_id]
        if row.empty:
            raise DataError(f"{self.root}: no image {image_id!r} in images.csv")
        return read_png16(self.root / row.iloc[0]["path"])

    def split_column(self, column: str = "split") -> pd.Series:
        """Every image's part (train, val, test, unlabeled) by ``image_id``: the default split, or a fold of
        ``folds.csv`` (``fold0``...)."""
        if column == "split":
            return self.images.set_index("image_id").split
        path = self.root / "folds.csv"
        if not path.is_file():
            raise DataError(f"{path}: no cross-validation folds")
        folds = pd.read_csv(path, dtype={"image_id": str, "patient_id": str})
        if column not in folds.columns:
            raise DataError(f"{path}: no column {column!r}; have {[c for c in folds.columns if c.startswith('fold')]}")
        return folds.set_index("image_id")[column]

    def split(self, name: str, column: str = "split") -> pd.DataFrame:
        """Images whose ``column`` (:meth:`split_column`) is ``name``."""
        parts = self.split_column(column)
        ids = set(parts.index[parts == name])
        return self.images.loc[self.images.image_id.isin(ids)].reset_index(drop=True)


def write_dataset(out: str | os.PathLike, images: pd.DataFrame, lesions: pd.DataFrame, meta: dict,
                  ratios: tuple[int, int, int], folds: int, seed: int, split: bool = True) -> dict:
    """Finish a prepared dataset, the same way for every source: the patient-level split of the labelled images
    (``split``; images with label -1 get ``unlabeled``), ``folds.csv``, ``lesions.csv``, ``images.csv``, then
    ``dataset.json`` (``meta`` plus the layout version and split counts) written last, so that its presence means
    the dataset is complete. Returns what ``dataset.json`` holds. ``split=False`` (a DICOM folder with too few
    labelled patients) marks every image ``unlabeled`` and writes an empty ``folds.csv``."""
    out = Path(out)
    labelled = images[images.label >= 0] if split else images.iloc[:0]
    images = images.assign(split=images.image_id.map(
        pd.Series(assign_splits(labelled, ratios, seed).to_numpy() if len(labelled) else [],
                  index=labelled.image_id, dtype=object)).astype(object).fillna("unlabeled"))
    write_csv(out / "lesions.csv", lesions if len(lesions.columns) else pd.DataFrame(columns=LESION_COLUMNS))
    if len(labelled):
        write_folds(out / "folds.csv", labelled, folds, seed)
    else:
        write_csv(out / "folds.csv", pd.DataFrame(columns=["image_id", "patient_id"]))
    write_csv(out / "images.csv", images)
    counts = {**meta.get("counts", {}), "splits": images.split.value_counts().sort_index().to_dict()}
    meta = {**meta, "layout_version": LAYOUT_VERSION, "split_ratios": list(ratios), "counts": counts}
    write_json(out / "dataset.json", meta)
    return meta
