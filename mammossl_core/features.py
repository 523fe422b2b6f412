"""Frozen-encoder grids of whole images (paper II.B), computed once per (encoder, dataset) and cached as float16
memory maps under the cache root (never inside the dataset), and their per-channel statistics over breast cells
(the feature standardisation of linear evaluation)."""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import torch
from torch.optim.swa_utils import update_bn
from tqdm.auto import tqdm

from .config import Profile
from .data.layout import DataError
from .data.tiles import ImageStore, TileDataset
from .evaldata import EvalData
from .io import atomic_path, cache_root, write_json
from .whole_image import grid_mask


def _cache_key(identity: str, store: ImageStore) -> str:
    h = hashlib.sha1(identity.encode())
    h.update(f"{store.dir.resolve()}|{tuple(store.images.shape)}|{store.image_ids[:3]}|{len(store.image_ids)}".encode())
    return h.hexdigest()[:16]


def encoder_identity(checkpoint, encoder: str | None, seed: int, bn: str | None = None) -> str:
    """What makes a frozen encoder's grids what they are: the checkpoint file (path, size, time) or the random
    encoder's name and seed, and how its batch-norm statistics were set."""
    if checkpoint is not None:
        p = Path(checkpoint).resolve()
        st = p.stat()
        ident = f"{p}|{st.st_size}|{st.st_mtime_ns}"
    else:
        ident = f"random|{encoder}|{seed}"
    return f"{ident}|bn={bn}"


@torch.no_grad()
def reestimate_batchnorm(trunk: torch.nn.Module, data, prof: Profile, image_ids: list[str], seed: int = 0,
                         device="cpu") -> torch.nn.Module:
    """Replace the batch-norm running statistics of ``trunk`` by those of tiled patches of ``image_ids`` (at most
    ``prof.eval.bn_tiles``, seeded), with :func:`torch.optim.swa_utils.update_bn` (a cumulative average). Gives a
    random encoder the same kind of statistics an SSL encoder carries from pretraining."""
    tiles = TileDataset(ImageStore(data), prof.data.tile_size, prof.data.tile_overlap, prof.data.max_background,
                        image_ids)
    n = min(prof.eval.bn_tiles, len(tiles))
    pick = np.sort(np.random.default_rng(seed).choice(len(tiles), n, replace=False))
    batches = [tiles[pick[s:s + 256]].expand(-1, 3, -1, -1).to(device) for s in range(0, n, 256)]
    update_bn(batches, trunk)
    return trunk.eval()


@torch.no_grad()
def grid_features(ev: EvalData, trunk: torch.nn.Module, identity: str, device="cpu", batch: int = 8,
                  cache_dir: str | os.PathLike | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Frozen grids of every stored image through ``trunk`` (in eval mode): (``(N, r, c, m)`` float16,
    ``(N, r, c)`` bool); cached on disk under ``cache_dir`` (default ``<cache root>/grids``) by ``identity``
    (:func:`encoder_identity`). Rows follow the store order (``ev.table.pos``)."""
    trunk = trunk.to(device).eval()
    cache = Path(cache_dir or cache_root() / "grids") / f"grid_{_cache_key(identity, ev.store)}"
    n = len(ev.store.image_ids)
    if (cache / "meta.json").is_file():
        meta = json.loads((cache / "meta.json").read_text())
        shape = tuple(meta["shape"])
        return np.memmap(cache / "feats.f16", dtype=np.float16, mode="r", shape=shape), np.load(cache / "mask.npy")
    cache.mkdir(parents=True, exist_ok=True)
    feats = None
    masks = None
    with atomic_path(cache / "feats.f16") as tmp:
        for s in tqdm(range(0, n, batch), desc="encoding whole images", leave=False):
            pos = np.arange(s, min(n, s + batch))
            x = torch.from_numpy(np.asarray(ev.store.images[pos], dtype=np.float32) / 65535.0).unsqueeze(1).to(device)
            h = trunk(x.expand(-1, 3, -1, -1)).float()
            if feats is None:
                shape = (n, h.shape[2], h.shape[3], h.shape[1])
                feats = np.memmap(tmp, dtype=np.float16, mode="w+", shape=shape)
                masks = np.zeros(shape[:3], bool)
            feats[pos] = h.permute(0, 2, 3, 1).cpu().numpy().astype(np.float16)
            breast = torch.from_numpy(np.asarray(ev.store.masks[pos]) > 0)
            masks[pos] = grid_mask(breast, shape[1], shape[2]).numpy()
        feats.flush()
        del feats
    np.save(cache / "mask.npy", masks)
    write_json(cache / "meta.json", {"shape": list(shape), "encoder": identity})
    return np.memmap(cache / "feats.f16", dtype=np.float16, mode="r", shape=shape), masks


def grid_statistics(feats: np.ndarray, masks: np.ndarray, pos: np.ndarray, chunk: int = 16):
    """Per-channel mean and standard deviation of the cached grids ``feats[pos]`` over breast cells (streamed)."""
    m = feats.shape[-1]
    n, s1, s2 = 0, np.zeros(m), np.zeros(m)
    for k in range(0, len(pos), chunk):
        p = np.sort(pos[k:k + chunk])
        cells = np.asarray(feats[p], dtype=np.float64)[masks[p]]
        n, s1, s2 = n + len(cells), s1 + cells.sum(0), s2 + (cells**2).sum(0)
    if n == 0:
        raise DataError("no breast cells in the training images' grids")
    mean = s1 / n
    return torch.as_tensor(mean, dtype=torch.float32), torch.as_tensor(np.sqrt(np.maximum(s2 / n - mean**2, 0)),
                                                                        dtype=torch.float32)
