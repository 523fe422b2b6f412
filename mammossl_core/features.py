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
from tqdm.auto import tqdm

from .data.layout import DataError
from .data.tiles import ImageStore
from .evaldata import EvalData
from .io import atomic_path, cache_root, write_json
from .loading import grid_encoder
from .whole_image import grid_mask


def _cache_key(checkpoint, encoder, seed: int, store: ImageStore) -> str:
    h = hashlib.sha1()
    if checkpoint is not None:
        p = Path(checkpoint).resolve()
        st = p.stat()
        h.update(f"{p}|{st.st_size}|{st.st_mtime_ns}".encode())
    else:
        h.update(f"random|{seed}".encode())
    h.update(f"{encoder}|{store.dir.resolve()}|{tuple(store.images.shape)}|{store.image_ids[:3]}|"
             f"{len(store.image_ids)}".encode())
    return h.hexdigest()[:16]


@torch.no_grad()
def grid_features(ev: EvalData, checkpoint=None, encoder: str | None = None, device="cpu", batch: int = 8,
                  cache_dir: str | os.PathLike | None = None, seed: int = 0) -> tuple[np.ndarray, np.ndarray, int]:
    """Frozen grids of every stored image: (``(N, r, c, m)`` float16, ``(N, r, c)`` bool, ``m``); cached on disk
    under ``cache_dir`` (default ``<cache root>/grids``). Rows follow the store order (``ev.table.pos``)."""
    trunk, m, _ = grid_encoder(checkpoint, encoder, seed)
    trunk = trunk.to(device).eval()
    cache = Path(cache_dir or cache_root() / "grids") / f"grid_{_cache_key(checkpoint, encoder, seed, ev.store)}"
    n = len(ev.store.image_ids)
    if (cache / "meta.json").is_file():
        meta = json.loads((cache / "meta.json").read_text())
        shape = tuple(meta["shape"])
        return (np.memmap(cache / "feats.f16", dtype=np.float16, mode="r", shape=shape),
                np.load(cache / "mask.npy"), m)
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
    write_json(cache / "meta.json", {"shape": list(shape), "checkpoint": str(checkpoint), "encoder": encoder})
    return np.memmap(cache / "feats.f16", dtype=np.float16, mode="r", shape=shape), masks, m


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
