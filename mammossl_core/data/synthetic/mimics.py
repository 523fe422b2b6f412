"""Mimics: findings of normal breasts that look like lesions to a detector that only sees brightness, with their own
masks and kinds so that a localisation can be scored on lesions and on mimics apart.

* ``summation``: glandular structures at different depths overlapping in one projection, a density without a
  margin of its own, in one view only (it disappears in the other);
* ``asymmetry``: a focal area of denser tissue, broad and faint, in both views;
* ``vascular``: calcified vessel walls, two parallel tracks of dashes along a curved vessel ("tram tracks");
* ``skin``: a few round calcifications with lucent centres in the skin, which a projection lays over the breast
  anywhere (not only at its edge).

They are drawn in every breast whatever its pathology (:class:`~mammossl_core.config.SynthConfig`'s ``*_rate``), with
contrasts from the same distributions as the lesions' (:func:`~.lesions.lesion_contrast`), so that a bright blob or a
bright dot is as likely in a normal breast as in one with cancer.
"""
from __future__ import annotations

import numpy as np

from .anatomy import power_law_noise
from .lesions import _dot, _window, lesion_contrast
from .params import SynthParams

KINDS = ("summation", "asymmetry", "vascular", "skin")


def draw_mimics(rng: np.random.Generator, params: SynthParams) -> list[dict]:
    """The mimics of one breast (each kind at most once), shared by its two views except a summation density,
    which shows in one view only."""
    rates = {"summation": params.summation_rate, "asymmetry": params.asymmetry_rate,
             "vascular": params.vascular_rate, "skin": params.skin_calc_rate}
    out = []
    for kind in KINDS:
        if rng.random() >= rates[kind]:
            continue
        radius = {"summation": rng.uniform(18, 40), "asymmetry": rng.uniform(40, 70),
                  "vascular": rng.uniform(60, 140), "skin": rng.uniform(20, 40)}[kind] * params.lesion_size
        contrast = lesion_contrast(rng, "calc" if kind in ("vascular", "skin") else "mass", params)
        out.append({"kind": kind, "radius": float(radius),
                    "contrast": contrast * (0.5 if kind == "asymmetry" else 1.0),
                    "views": (str(rng.choice(["CC", "MLO"])),) if kind == "summation" else ("CC", "MLO"),
                    "depth": float(rng.uniform(0.2, 0.85)), "offset_cc": float(rng.uniform(-1, 1)),
                    "offset_mlo": float(rng.uniform(-1, 1)), "dot": float(rng.uniform(2.0, 4.5) * params.lesion_size),
                    "shape_seed": int(rng.integers(2**31))})
    return out


def render_mimic(mimic: dict, h: int, w: int, r0: int, c0: int, scale: float) -> tuple[np.ndarray, np.ndarray, tuple]:
    """Profile (0..1, times the mimic's contrast by the caller) and mask in a local window."""
    rng = np.random.default_rng(mimic["shape_seed"])
    R = mimic["radius"] * scale
    dot = max(0.55, mimic["dot"] * scale)
    kind = mimic["kind"]
    rs, re, cs, ce = _window(h, w, r0, c0, int(np.ceil(R * (1.3 if kind in ("vascular", "skin") else 2.2))) + 3)
    yy, xx = np.mgrid[rs:re, cs:ce].astype(np.float32)
    dy, dx = yy - r0, xx - c0
    prof = np.zeros(yy.shape, np.float32)
    if kind in ("summation", "asymmetry"):
        # overlapping elongated structures (summation) or one broad patch (asymmetry), broken up by the tissue's own
        # texture: no margin of its own
        lobes = int(rng.integers(2, 5)) if kind == "summation" else 1
        for _ in range(lobes):
            cy, cx = rng.normal(0, 0.35 * R, 2) if kind == "summation" else (0.0, 0.0)
            rot, el = rng.uniform(0, np.pi), rng.uniform(1.5, 3.0) if kind == "summation" else rng.uniform(1.0, 1.6)
            u = (dx - cx) * np.cos(rot) + (dy - cy) * np.sin(rot)
            v = -(dx - cx) * np.sin(rot) + (dy - cy) * np.cos(rot)
            s = 0.55 * R
            np.maximum(prof, np.exp(-0.5 * ((u / (s * np.sqrt(el))) ** 2 + (v * np.sqrt(el) / s) ** 2)), out=prof)
        prof *= np.clip(0.65 + 0.35 * power_law_noise(prof.shape, 2.5, rng), 0, None)
        mask = prof > 0.35
    elif kind == "vascular":
        # a vessel: a smooth curve through the window; its two calcified walls are dashes either side
        n = 40
        ang = rng.uniform(0, 2 * np.pi)
        turn = np.cumsum(rng.normal(0, 0.05, n))
        t = np.linspace(-R, R, n)
        py = np.cumsum(np.r_[0, np.diff(t)] * np.sin(ang + turn))
        px = np.cumsum(np.r_[0, np.diff(t)] * np.cos(ang + turn))
        py, px = py - py.mean(), px - px.mean()
        half = max(1.0, 0.35 * dot * 3)  # the vessel's half width
        normal = ang + turn + np.pi / 2
        for i in range(0, n, 2):
            if rng.random() < 0.25:  # gaps between dashes
                continue
            for side in (-1, 1):
                y = r0 + py[i] + side * half * np.sin(normal[i])
                x = c0 + px[i] + side * half * np.cos(normal[i])
                np.maximum(prof, _dot(xx, yy, y, x, 0.6 * dot, 2.5, ang + turn[i], False), out=prof)
        mask = prof > 0.2
    else:  # skin: a few lucent-centred dots scattered round the point
        for _ in range(int(rng.integers(2, 6))):
            rr, a = R * np.sqrt(rng.uniform(0, 1)), rng.uniform(0, 2 * np.pi)
            np.maximum(prof, _dot(xx, yy, r0 + rr * np.sin(a), c0 + rr * np.cos(a), dot, 1.0, 0.0, True), out=prof)
        mask = dy**2 + dx**2 <= (R * 1.15 + dot) ** 2
    return prof.astype(np.float32), mask, (rs, re, cs, ce)
