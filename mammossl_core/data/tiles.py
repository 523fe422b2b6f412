"""Tiled patches (paper section III.C): a grid over each whole image, background-heavy tiles dropped.

Patches are not written as files. Every whole image of a prepared dataset is copied once into a
memory-mapped 16-bit image store (``DIR/store/images.u16``, shape ``(N, H, W)``) next to its breast mask
(``DIR/store/masks.u8``); a tiling is an index of ``(image, row, col)`` triples
(``DIR/store/index_p<P>_o<overlap>_b<background>.npy``) from which a DataLoader samples crops.

One owner writes these files: :meth:`ImageStore.build` (``mammossl tiles``, or the book's dataset step), guarded by
a lock against parallel builders. Everything else opens them read-only, so a prepared dataset on a read-only share
works for pretraining, evaluation and the analyses once it has been built.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import multiprocessing as mp
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage
from skimage.filters import threshold_otsu
from tqdm.auto import tqdm

from .layout import DataError, PreparedDataset, read_png16
from ..io import atomic_path, write_json

STORE_VERSION = 2
STORE_DIR = "store"


@contextlib.contextmanager
def build_lock(data_dir: str | os.PathLike, name: str):
    """Hold an exclusive lock on ``DIR/.<name>.lock`` while a data product of ``DIR`` is built, so that parallel
    builders (several notebooks, ``torchrun`` ranks, CI jobs) wait for the first one instead of racing it."""
    path = Path(data_dir) / f".{name}.lock"
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def breast_mask(img: np.ndarray) -> np.ndarray:
    """Boolean breast mask of a whole image with the chest wall on the left.

    Robust to film borders and burned-in labels: threshold well below Otsu's level, open with a disk that
    cuts thin film-edge bands, keep the component touching the chest wall (the largest if none does) and
    fill its holes.
    """
    x = img.astype(np.float32)
    top = float(x.max())
    if top <= 0:
        return np.zeros(img.shape, bool)
    try:
        level = threshold_otsu(x[:: max(1, x.shape[0] // 256), :: max(1, x.shape[1] // 256)])
    except ValueError:
        level = top / 2
    fg = x > max(0.25 * level, 0.02 * top)
    r = max(2, int(round(0.012 * min(img.shape))))
    yy, xx = np.mgrid[-r : r + 1, -r : r + 1]
    fg = ndimage.binary_opening(fg, structure=(xx**2 + yy**2) <= r * r)
    lab, n = ndimage.label(fg)
    if n == 0:
        return fg
    sizes = ndimage.sum_labels(fg, lab, index=np.arange(1, n + 1))
    touching = np.unique(lab[:, 0])
    touching = touching[touching > 0]
    if len(touching):
        keep = touching[np.argmax(sizes[touching - 1])]
    else:
        keep = int(np.argmax(sizes)) + 1
    return ndimage.binary_fill_holes(lab == keep)


def tile_grid(height: int, width: int, patch: int, overlap: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """Top-left corners of a regular grid of ``patch`` x ``patch`` tiles with the given overlap."""
    if not 0 <= overlap < 1:
        raise ValueError(f"overlap={overlap}: must be in [0, 1)")
    if patch > min(height, width):
        raise ValueError(f"patch={patch} is larger than the image ({height}x{width})")
    stride = max(1, int(round(patch * (1 - overlap))))
    return np.arange(0, height - patch + 1, stride), np.arange(0, width - patch + 1, stride)


def background_fractions(mask: np.ndarray, patch: int, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Fraction of non-breast pixels in every grid tile (summed-area table), shape ``(len(rows), len(cols))``."""
    sat = np.pad(mask.astype(np.int64).cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    r0, c0 = rows[:, None], cols[None, :]
    inside = sat[r0 + patch, c0 + patch] - sat[r0, c0 + patch] - sat[r0 + patch, c0] + sat[r0, c0]
    return 1.0 - inside / float(patch * patch)


def _load_with_mask(path: str):
    """(image, breast mask, None) or (None, None, error message) for one file; runs in worker processes."""
    try:
        img = read_png16(path)
    except DataError as e:
        return None, None, str(e)
    return img, breast_mask(img).astype(np.uint8), None


class ImageStore:
    """Memory-mapped 16-bit store of a prepared dataset's whole images and breast masks (opened read-only)."""

    def __init__(self, data_dir: str | os.PathLike):
        self.dir = Path(data_dir) / STORE_DIR
        meta_path = self.dir / "store.json"
        if not meta_path.is_file():
            raise DataError(f"{meta_path}: no image store; build it with `mammossl tiles --data {data_dir}`")
        self.meta = json.loads(meta_path.read_text())
        if self.meta.get("version") != STORE_VERSION:
            raise DataError(f"{meta_path}: image store of another version; rebuild it with "
                            f"`mammossl tiles --data {data_dir}`")
        shape = tuple(self.meta["shape"])
        self.images = np.memmap(self.dir / "images.u16", dtype=np.uint16, mode="r", shape=shape)
        self.masks = np.memmap(self.dir / "masks.u8", dtype=np.uint8, mode="r", shape=shape)
        self.image_ids: list[str] = self.meta["image_ids"]

    @staticmethod
    def up_to_date(data_dir: str | os.PathLike) -> bool:
        """Whether ``data_dir`` has a store of this version holding exactly the images of ``images.csv``."""
        meta_path = Path(data_dir) / STORE_DIR / "store.json"
        if not meta_path.is_file():
            return False
        meta = json.loads(meta_path.read_text())
        return meta.get("version") == STORE_VERSION and meta.get("source_images") == list(
            PreparedDataset(data_dir).images.image_id)

    @classmethod
    def build(cls, data_dir: str | os.PathLike, progress: bool = True,
              tilings: tuple[tuple[int, float, float], ...] = ()) -> tuple["ImageStore", list[dict]]:
        """Copy every readable image of ``data_dir`` into the store and write the tile index of each
        ``(patch, overlap, max_background)`` in ``tilings``; returns (store, per-file failures).

        An unreadable image is reported and left out; the rest goes on. An up-to-date store is reused (and nothing is
        written to a dataset whose products all exist, so a read-only copy works).
        """
        PreparedDataset(data_dir)  # a clear error for a wrong directory, before any lock file is made
        if not cls.up_to_date(data_dir) or not all(cls(data_dir)._index_path(*t).is_file() for t in tilings):
            with build_lock(data_dir, "store"):
                if not cls.up_to_date(data_dir):
                    cls._build(data_dir, progress)
                store = cls(data_dir)
                for t in tilings:
                    store.index(*t, write=True)
        store = cls(data_dir)
        return store, store.meta.get("failures", [])

    @classmethod
    def _build(cls, data_dir: str | os.PathLike, progress: bool) -> None:
        ds = PreparedDataset(data_dir)
        out = Path(data_dir) / STORE_DIR
        meta_path = out / "store.json"
        out.mkdir(parents=True, exist_ok=True)
        first = None
        failures: list[dict] = []
        ok_ids: list[str] = []
        n = len(ds.images)
        if n == 0:
            raise DataError(f"{ds.root / 'images.csv'}: no images")
        h = w = None
        with atomic_path(out / "images.u16") as tmp_img, atomic_path(out / "masks.u8") as tmp_mask:
            imgs = masks = None
            paths = [str(ds.root / p) for p in ds.images.path]
            workers = max(1, min(os.cpu_count() or 1, 16, n))
            ctx = mp.get_context("fork") if os.name != "nt" else mp.get_context("spawn")
            pool = ctx.Pool(workers) if workers > 1 else None
            results = pool.imap(_load_with_mask, paths, chunksize=4) if pool else map(_load_with_mask, paths)
            try:
                for image_id, path, (img, mask, err) in tqdm(zip(ds.images.image_id, paths, results), total=n,
                                                             desc="tile store", disable=not progress):
                    if err is None and first is None:
                        first = path
                        h, w = img.shape
                        imgs = np.memmap(tmp_img, dtype=np.uint16, mode="w+", shape=(n, h, w))
                        masks = np.memmap(tmp_mask, dtype=np.uint8, mode="w+", shape=(n, h, w))
                    if err is None and img.shape != (h, w):
                        err = f"{path}: size {img.shape} differs from {(h, w)} of {first}"
                    if err is not None:
                        failures.append({"image_id": image_id, "path": path, "error": err})
                        continue
                    k = len(ok_ids)
                    imgs[k] = img
                    masks[k] = mask
                    ok_ids.append(image_id)
            finally:
                if pool:
                    pool.close()
                    pool.join()
            if not ok_ids:
                raise DataError(f"{ds.root}: no readable image; first error: {failures[0]['error']}")
            imgs.flush()
            masks.flush()
            del imgs, masks
            # trim to the images actually stored
            for tmp in (tmp_img, tmp_mask):
                itemsize = 2 if tmp == tmp_img else 1
                os.truncate(tmp, len(ok_ids) * h * w * itemsize)
        write_json(meta_path, {
            "version": STORE_VERSION, "shape": [len(ok_ids), h, w], "image_ids": ok_ids,
            "source_images": list(ds.images.image_id), "failures": failures,
        })

    def _index_path(self, patch: int, overlap: float = 0.5, max_background: float = 0.2) -> Path:
        return self.dir / f"index_p{patch}_o{int(round(overlap * 100))}_b{int(round(max_background * 100))}.npy"

    def index(self, patch: int, overlap: float = 0.5, max_background: float = 0.2, write: bool = False) -> np.ndarray:
        """Tile index for one tiling: structured array of ``(image, row, col, background)``. Read from the store
        when :meth:`build` wrote it, else computed in memory (``write=True``: the builder writes it)."""
        path = self._index_path(patch, overlap, max_background)
        if path.is_file():
            return np.load(path)
        n, h, w = self.images.shape
        rows, cols = tile_grid(h, w, patch, overlap)
        parts = []
        for k in range(n):
            bg = background_fractions(np.asarray(self.masks[k]) > 0, patch, rows, cols)
            ri, ci = np.nonzero(bg <= max_background + 1e-9)
            rec = np.empty(len(ri), dtype=TILE_DTYPE)
            rec["image"], rec["row"], rec["col"], rec["background"] = k, rows[ri], cols[ci], bg[ri, ci]
            parts.append(rec)
        idx = np.concatenate(parts) if parts else np.empty(0, TILE_DTYPE)
        if write:
            with atomic_path(path) as tmp:
                with open(tmp, "wb") as f:
                    np.save(f, idx)
        return idx

    def crops(self, index: np.ndarray, patch: int) -> np.ndarray:
        """Read the tiles of ``index`` (a slice of a tile index) as a ``(B, patch, patch)`` uint16 array."""
        out = np.empty((len(index), patch, patch), np.uint16)
        for j, (k, r, c) in enumerate(zip(index["image"], index["row"], index["col"])):
            out[j] = self.images[k, r : r + patch, c : c + patch]
        return out


TILE_DTYPE = np.dtype([("image", np.int32), ("row", np.int32), ("col", np.int32), ("background", np.float32)])


@dataclass
class TileDataset(torch.utils.data.Dataset):
    """Tiles of some images of a store, as float tensors ``(1, P, P)`` in [0, 1] (16-bit precision kept).

    ``image_ids`` restricts the tiles to a subset (e.g. the training split). Indexing with a list of
    positions returns a whole batch in one call, which is how the trainer's sampler reads.
    """

    store: ImageStore
    patch: int
    overlap: float = 0.5
    max_background: float = 0.2
    image_ids: list[str] | None = None

    def __post_init__(self):
        idx = self.store.index(self.patch, self.overlap, self.max_background)
        if self.image_ids is not None:
            keep = np.isin(np.asarray(self.store.image_ids), list(self.image_ids))
            idx = idx[keep[idx["image"]]]
        self.tiles = idx

    def __len__(self) -> int:
        return len(self.tiles)

    def __getitem__(self, i):
        sel = self.tiles[np.atleast_1d(i)]
        x = torch.from_numpy(self.store.crops(sel, self.patch).astype(np.float32) / 65535.0).unsqueeze(1)
        return x if not np.isscalar(i) else x[0]
