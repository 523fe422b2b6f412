"""The acquisition domains (paper Fig. 7): scanned film (``ddsm``) and a digital detector (``cmmd``)."""
from __future__ import annotations

import numpy as np
from scipy import ndimage

from .anatomy import lowfreq_1d
from .params import SynthParams


def _film_response(s: np.ndarray) -> np.ndarray:
    """Sigmoid characteristic (H&D) curve of screen film, 0 -> 0."""
    lo = 1.0 / (1.0 + np.exp(5.5 * 0.5))
    return (1.0 / (1.0 + np.exp(-5.5 * (s - 0.5))) - lo) / (1 - 2 * lo)


def acquire(signal: np.ndarray, breast: np.ndarray, view: str, params: SynthParams,
            rng: np.random.Generator) -> np.ndarray:
    """The detector's response to the projected ``signal`` (0-1 floats, breast only): scanned film for ``ddsm``
    (film curve, grain, fog, scanner non-uniformity, film-edge bands and a burned-in label away from the breast),
    a digital detector for ``cmmd`` (linear processing above a fat offset, quantum noise, clean air background)."""
    h, w = signal.shape
    if params.domain == "ddsm":
        v = _film_response(signal * 0.9)
        grain = ndimage.gaussian_filter(rng.standard_normal((h, w)).astype(np.float32), 0.7)
        v = v * (1 + 0.012 * grain)  # film grain, blurred by the scanner's aperture
        v += 0.004 * np.abs(rng.standard_normal((h, w)))  # film base and fog
        v += 0.01 * lowfreq_1d(w, rng)[None, :] * breast  # scanner non-uniformity
        # film-edge bands and a burned-in label, away from the breast
        bw = max(2, int(0.012 * w))
        v[:, w - bw :] = np.maximum(v[:, w - bw :], rng.uniform(0.75, 0.95))
        if rng.random() < 0.6:
            v[h - bw :, :] = np.maximum(v[h - bw :, :], rng.uniform(0.6, 0.9))
        lh, lw = int(h * rng.uniform(0.05, 0.08)), int(w * rng.uniform(0.12, 0.2))
        lr = int(rng.uniform(0.04, 0.2) * h) if view == "CC" else int(rng.uniform(0.75, 0.85) * h)
        lc = w - bw - lw - int(0.05 * w)
        if not breast[lr : lr + lh, lc : lc + lw].any():
            label = np.full((lh, lw), 0.92, np.float32)
            for k in range(int(rng.integers(3, 7))):  # dark "characters"
                cw = max(1, lw // 9)
                x0 = 1 + k * (cw + 1)
                label[lh // 4 : 3 * lh // 4, x0 : x0 + cw] = 0.2
            v[lr : lr + lh, lc : lc + lw] = label
    else:  # digital detector: linear processing above a fat offset, quantum noise, clean air background
        v = np.where(breast, 0.01 + 1.28 * np.clip(signal - 0.185, 0, 1), 0.0)
        v = v + breast * 0.004 * rng.standard_normal((h, w)).astype(np.float32)
    return v
