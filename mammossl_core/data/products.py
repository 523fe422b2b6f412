"""The data products derived from a prepared dataset, and their one builder.

A prepared dataset (``images.csv``, PNGs, masks) is read by every later step; the products derived from it are
written by :func:`build_products` only (``mammossl tiles``, or the book's dataset step):

* the image store and the tile index of every tile size of the profile (:class:`~.tiles.ImageStore`);
* the annotated patch set at the profile's annotated-patch size (:mod:`~.patches`).

Pretraining, evaluation and the analyses open them read-only and raise :class:`~.layout.DataError` naming this
command when a product is missing, so a built dataset can live on a read-only share.
"""
from __future__ import annotations

import os

from ..config import Profile
from .layout import PreparedDataset
from .patches import build_annotated_patches
from .tiles import ImageStore


def build_products(data_dir: str | os.PathLike, prof: Profile, progress: bool = True) -> list[dict]:
    """Build (or reuse) the image store, the tile indexes of ``prof.data.tile_sizes`` and ``tile_size`` that fit
    the images and, when the dataset has lesion annotations, the annotated patch set. Returns the per-file failures
    of the store."""
    d = prof.data
    store, failures = ImageStore.build(data_dir, progress)
    _, h, w = store.images.shape  # tile sizes larger than the images (small test datasets) have no tiles
    sizes = sorted(p for p in {*d.tile_sizes, d.tile_size} if p <= min(h, w))
    ImageStore.build(data_dir, progress, tuple((p, d.tile_overlap, d.max_background) for p in sizes))
    if len(PreparedDataset(data_dir).lesions):
        build_annotated_patches(data_dir, d.annotated_patch, seed=prof.pretrain.seed, progress=progress)
    return failures
