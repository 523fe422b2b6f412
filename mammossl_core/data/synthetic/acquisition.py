"""The acquisition domains (paper Fig. 7), scanned film (``ddsm``) and a digital detector (``cmmd``), and what varies
from one exposure to the next within a domain (:class:`Acquisition`): the dose, the beam's contrast, the tone curve
of the film or of the vendor's processing, and the noise. Real screening sets mix films, processors and vendors; a
generator with one fixed curve would leave the intensity augmentations of SSL nothing to make a model invariant to."""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy import ndimage

from .anatomy import lowfreq_1d
from .params import SynthParams


#: per-domain ranges of each acquisition parameter (uniform): film types and processors differ in speed and slope
#: (H&D gamma), digital vendors in their tone curves (a power law) and quantum noise; centred so that the pooled
#: intensity percentiles stay near the real films' (``config.REAL_FILMS``, checked by the realism test)
RANGES = {
    "ddsm": {"exposure": (-0.035, 0.065), "contrast": (0.75, 1.1), "curve": (5.0, 6.0), "noise": (0.008, 0.02)},
    "cmmd": {"exposure": (-0.05, 0.03), "contrast": (0.8, 1.1), "curve": (0.7, 1.1), "noise": (0.002, 0.01)},
}
#: the signal level of fat, about which the beam contrast scales the tissue's attenuation
_FAT = 0.3


@dataclass(frozen=True)
class Acquisition:
    """One image's acquisition: ``exposure`` shifts the signal (dose), ``contrast`` scales it about fat (beam
    quality), ``curve`` is the film's H&D slope (``ddsm``) or the processing's gamma (``cmmd``),
    ``noise`` the grain or quantum noise's standard deviation.
    Recorded per image in ``images.csv`` with the prefix ``acq_``."""

    exposure: float
    contrast: float
    curve: float
    noise: float

    @classmethod
    def draw(cls, rng: np.random.Generator, domain: str) -> "Acquisition":
        r = RANGES[domain]
        return cls(**{k: float(rng.uniform(*r[k])) for k in ("exposure", "contrast", "curve", "noise")})

    def expose(self, signal: np.ndarray) -> np.ndarray:
        """The tissue's attenuation at full thickness under this beam and dose (before the compression fall-off, so
        that the skin line still fades to the air)."""
        return (signal - _FAT) * self.contrast + _FAT + self.exposure

    def record(self) -> dict:
        return {f"acq_{k}": round(v, 5) for k, v in asdict(self).items()}


def _film_response(s: np.ndarray, slope: float = 5.5) -> np.ndarray:
    """Sigmoid characteristic (H&D) curve of screen film, 0 -> 0."""
    lo = 1.0 / (1.0 + np.exp(slope * 0.5))
    return (1.0 / (1.0 + np.exp(-slope * (s - 0.5))) - lo) / (1 - 2 * lo)


def acquire(signal: np.ndarray, breast: np.ndarray, view: str, params: SynthParams,
            rng: np.random.Generator, acq: Acquisition) -> np.ndarray:
    """The detector's response to the projected ``signal`` (0-1 floats, breast only, already exposed by
    :meth:`Acquisition.expose`) with ``acq``'s tone curve and noise: scanned film for
    ``ddsm`` (film curve, grain, fog, scanner non-uniformity, film-edge bands and a burned-in label away from the
    breast), a digital detector for ``cmmd`` (processing above a fat offset, quantum noise, clean air background)."""
    h, w = signal.shape
    tissue = signal
    if params.domain == "ddsm":
        v = _film_response(tissue * 0.9, acq.curve)
        grain = ndimage.gaussian_filter(rng.standard_normal((h, w)).astype(np.float32), 0.7)
        v = v * (1 + acq.noise * grain)  # film grain, blurred by the scanner's aperture
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
    else:  # digital: a window above the fat offset, the vendor's tone curve, quantum noise, clean air background
        x = np.clip((tissue - 0.185) * 1.28, 0, 1)
        v = np.where(breast, 0.01 + x**acq.curve, 0.0)
        v = v + breast * acq.noise * rng.standard_normal((h, w)).astype(np.float32)
    return v
