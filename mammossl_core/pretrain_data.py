"""What SSL pretraining reads (paper IV.A, V.A-B): the unlabelled training or validation set of a method (tiled
patches, annotated patches or whole images, from a dataset's data products), and the sampler that deals each
process its slice of every global batch in an order seeded by ``(seed, epoch)``, so that a resumed run and a run on
any number of processes see the same global batches.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from . import distributed as D
from .augment import MammoAugment
from .config import PretrainConfig, Profile
from .data.layout import PreparedDataset
from .data.patches import AnnotatedPatches
from .data.tiles import ImageStore, TileDataset
from .ssl import SSLMethod


class WholeImages(torch.utils.data.Dataset):
    """Whole images of the store for ViT-MAE, resized to a square, batched by index lists."""

    def __init__(self, store: ImageStore, image_ids: list[str], size: int):
        self.store, self.size = store, size
        self.pos = np.nonzero(np.isin(np.asarray(store.image_ids), image_ids))[0]

    def __len__(self):
        return len(self.pos)

    def __getitem__(self, idx):
        x = torch.from_numpy(np.asarray(self.store.images[self.pos[np.atleast_1d(idx)]], dtype=np.float32) / 65535.0)
        return F.interpolate(x.unsqueeze(1), size=(self.size, self.size), mode="bilinear", antialias=True)


class PatchImages(torch.utils.data.Dataset):
    """Annotated patches of one split, batched by index lists (labels unused in pretraining)."""

    def __init__(self, data_dir, patch: int, split: str):
        self.ap = AnnotatedPatches(data_dir, patch, split)

    def __len__(self):
        return len(self.ap)

    def __getitem__(self, idx):
        return torch.from_numpy(np.asarray(self.ap.arr[self.ap.pos[np.atleast_1d(idx)]], dtype=np.float32) / 65535.0
                                ).unsqueeze(1)


def build_dataset(prof: Profile, cfg: PretrainConfig, data_dir, method: type[SSLMethod], split: str):
    """The unlabeled training (or validation) set of a method: tiled patches, annotated patches or whole images,
    read from the dataset's data products (built by ``mammossl tiles``; opened read-only)."""
    ds = PreparedDataset(data_dir)
    ids = list(ds.split(split, cfg.split).image_id)
    if split == "train":  # unlabelled images (split "unlabeled") are pretraining data too
        ids += list(ds.split("unlabeled").image_id)
    if method.whole_images and cfg.source == "tiles":
        return WholeImages(ImageStore(data_dir), ids, cfg.mae.image_size)
    if cfg.source == "annotated":
        return PatchImages(data_dir, prof.data.annotated_patch, split)
    return TileDataset(ImageStore(data_dir), prof.data.tile_size, prof.data.tile_overlap, prof.data.max_background,
                       ids)


class GlobalBatches(torch.utils.data.Sampler):
    """Index lists of this process's slice of each global batch of one epoch, from batch ``start`` on."""

    def __init__(self, n: int, global_batch: int, seed: int, epoch: int, start: int, shuffle: bool = True):
        self.n, self.gb, self.start = n, global_batch, start
        g = torch.Generator().manual_seed(seed * 7919 + epoch)
        self.perm = torch.randperm(n, generator=g).numpy() if shuffle else np.arange(n)
        self.local = global_batch // D.world_size()
        self.rank = D.rank()

    def __len__(self):
        return self.n // self.gb - self.start

    def __iter__(self):
        for k in range(self.start, self.n // self.gb):
            lo = k * self.gb + self.rank * self.local
            yield self.perm[lo : lo + self.local].tolist()


def loader(ds, global_batch, seed, epoch, start, num_workers, pin, shuffle=True):
    sampler = GlobalBatches(len(ds), global_batch, seed, epoch, start, shuffle)
    return torch.utils.data.DataLoader(ds, sampler=sampler, batch_size=None, num_workers=num_workers,
                                       pin_memory=pin, persistent_workers=False)


def clean_batches(ds, size: int, dev: torch.device, n: int = 2048, batch: int = 256):
    """Up to ``n`` samples of ``ds`` in a fixed order, without augmentation, as ``(B, 3, size, size)`` batches."""
    plain = MammoAugment("none", size=size)
    g = torch.Generator(device=dev)
    for lo in range(0, min(n, len(ds)), batch):
        yield plain(ds[list(range(lo, min(lo + batch, n, len(ds))))].to(dev), g)
