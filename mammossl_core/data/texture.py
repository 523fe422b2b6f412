"""Texture and intensity statistics of a mammogram: how a synthetic film is held against real ones.

The estimator is the project's reference one (``shared/realfmt/texture_stats.py``, which measured the real CBIS-DDSM
figures in :data:`mammossl_core.config.REAL_FILMS`), carried into the package so that chapter 0 and users can run it
anywhere; ``tests/test_synthetic.py`` checks that both give the same numbers on the same image.

For one image: the breast is the largest bright connected region; windows of 128 px fully inside the breast eroded
by 40 px are Hann-windowed and the radial power spectrum's log-log slope between 4 and 32 cycles per window is beta
(``P ~ 1/f^beta``); also the breast's share of the image and its 5th, 50th and 95th intensity percentiles as a
fraction of the 16-bit range.

>>> from mammossl_core.data.texture import texture_stats
>>> texture_stats(image_uint16)["beta"]  # doctest: +SKIP
3.1
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import ndimage

WINDOW = 128
BAND = (4, 32)


def texture_stats(image: np.ndarray, windows: int = 30, seed: int = 0) -> dict:
    """Spectral slope ``beta`` (median over up to ``windows`` windows; None if none fits), ``windows`` used,
    ``breast_fraction`` and ``intensity_p5_p50_p95`` of a 16-bit image at about the paper's scale (1152 rows)."""
    a = np.asarray(image, dtype=np.float64)
    m = a > max(np.percentile(a, 50) * 0.5 + a.min() * 0.5, 0.08 * a.max())
    lab, n = ndimage.label(m)
    sizes = ndimage.sum(m, lab, range(1, n + 1))
    breast = ndimage.binary_fill_holes(lab == 1 + int(np.argmax(sizes)))
    ys, xs = np.nonzero(ndimage.binary_erosion(breast, iterations=40))
    rng = np.random.default_rng(seed)
    hann = np.outer(np.hanning(WINDOW), np.hanning(WINDOW))
    fy, fx = np.indices((WINDOW, WINDOW)) - WINDOW // 2
    fr = np.hypot(fy, fx)
    band = (fr >= BAND[0]) & (fr <= BAND[1])
    half = WINDOW // 2
    betas = []
    for _ in range(windows if len(ys) else 0):
        i = rng.integers(len(ys))
        y, x = ys[i] - half, xs[i] - half
        if y < 0 or x < 0 or y + WINDOW > a.shape[0] or x + WINDOW > a.shape[1] or \
                not breast[y:y + WINDOW, x:x + WINDOW].all():
            continue
        w = a[y:y + WINDOW, x:x + WINDOW]
        p = np.abs(np.fft.fftshift(np.fft.fft2((w - w.mean()) * hann))) ** 2
        betas.append(-np.polyfit(np.log(fr[band]), np.log(p[band]), 1)[0])
    v = a[breast] / 65535.0
    return {"beta": round(float(np.median(betas)), 2) if betas else None, "windows": len(betas),
            "breast_fraction": round(float(breast.mean()), 3),
            "intensity_p5_p50_p95": [round(float(q), 3) for q in np.percentile(v, [5, 50, 95])]}


def _row(stats: dict) -> dict:
    p5, p50, p95 = stats["intensity_p5_p50_p95"]
    return {"beta": stats["beta"], "breast_fraction": stats["breast_fraction"], "p5": p5, "p50": p50, "p95": p95}


def _patient_texture(args: tuple[int, int, str, str]) -> list[dict]:
    from .synthetic import SynthParams, generate_images

    index, seed, profile, domain = args
    return [{"image_id": v.row["image_id"], "density": v.row["density"], **_row(texture_stats(v.image))}
            for v in generate_images(index, seed, SynthParams.of(profile, domain))]


def synthetic_texture(patients: int, seed: int, domain: str, profile: str = "paper",
                      workers: int | None = None) -> pd.DataFrame:
    """:func:`texture_stats` of every view of ``patients`` synthetic patients drawn at ``profile``'s image size
    (rendered in memory, nothing written), one row per image. Patients are drawn from their own random streams,
    so ``workers`` processes (default: one per core, up to the patients) give the same table as one."""
    import multiprocessing as mp
    import os

    jobs = [(i, seed, profile, domain) for i in range(patients)]
    workers = min(workers or os.cpu_count() or 1, patients)
    if workers > 1:
        with mp.get_context("spawn" if os.name == "nt" else "fork").Pool(workers) as pool:
            per_patient = pool.map(_patient_texture, jobs, chunksize=1)
    else:
        per_patient = [_patient_texture(j) for j in jobs]
    return pd.DataFrame([row for rows in per_patient for row in rows])


def prepared_texture(data_dir, images: int) -> pd.DataFrame:
    """:func:`texture_stats` of the first ``images`` images of a prepared dataset (e.g. converted CBIS-DDSM at the
    paper size), one row per image, in the columns of :func:`synthetic_texture`."""
    from .layout import PreparedDataset

    ds = PreparedDataset(data_dir)
    return pd.DataFrame([{"image_id": i, **_row(texture_stats(ds.load_image(i)))}
                         for i in ds.images.image_id[:images]])


def image_spread(data_dir) -> pd.DataFrame:
    """Each image's breast median and contrast (95th minus 5th percentile inside the breast, shares of the 16-bit
    range), from the dataset's image store: how much one exposure differs from the next."""
    from .tiles import ImageStore

    store = ImageStore(data_dir)
    rows = []
    for k, image_id in enumerate(store.image_ids):
        breast = np.asarray(store.masks[k]) > 0
        v = np.asarray(store.images[k], dtype=np.float32)[breast] / 65535.0
        p5, p50, p95 = np.percentile(v, [5, 50, 95]) if v.size else (np.nan,) * 3
        rows.append({"image_id": image_id, "median": float(p50), "contrast": float(p95 - p5)})
    return pd.DataFrame(rows)


def compare_with_real(tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Medians of each domain's :func:`synthetic_texture` table beside the real films' figures
    (:data:`~mammossl_core.config.REAL_FILMS`), with a column saying whether each falls in the real range."""
    from ..config import REAL_FILMS

    rows = []
    for name, (lo, hi) in REAL_FILMS["ranges"].items():
        row = {"statistic": name, "real films": f"{lo:.2f}-{hi:.2f}" if lo != hi else f"{lo:.2f}"}
        for domain, t in tables.items():
            v = float(t[name].median())
            row[f"synthetic {domain}"] = round(v, 3)
            row[f"{domain} in range"] = "yes" if lo - REAL_FILMS["tolerance"][name] <= v <= \
                hi + REAL_FILMS["tolerance"][name] else "no"
        rows.append(row)
    return pd.DataFrame(rows)
