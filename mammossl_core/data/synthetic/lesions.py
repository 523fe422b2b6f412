"""Lesions and their masks: masses (round, oval, irregular, spiculated), architectural distortion and
calcification clusters, where they sit in the breast, and the tissue they pull in."""
from __future__ import annotations

import numpy as np
from scipy import ndimage

from .params import SynthParams


def lesion_contrast(rng: np.random.Generator, kind: str, params: SynthParams) -> float:
    """A lesion's own contrast, log-uniform within a factor ``lesion_contrast_spread`` of the median of its kind;
    drawn the same way for both pathologies, so that brightness says nothing about malignancy."""
    median = params.lesion_contrast * (params.calc_contrast if kind == "calc" else 1.0)
    return float(median * params.lesion_contrast_spread ** rng.uniform(-1, 1))


def draw_lesion(rng: np.random.Generator, pathology: str, params: SynthParams) -> dict:
    """One finding of ``pathology``. Benign and malignant differ only in morphology: masses in outline, margin and
    spiculation (their integrated density is normalised to that of a circumscribed mass of the same size, see
    :func:`render_mass`), calcification clusters in the form and arrangement of their dots; size, contrast, dot
    size and dot count are drawn from the same distributions for both."""
    kind = "mass" if rng.random() < 0.5 else "calc"
    radius = rng.uniform(18, 40) * params.lesion_size  # pixels at 1152 rows
    dot = 0.0
    if pathology == "malignant" and rng.random() < params.distortion_share:
        # architectural distortion: spicules and pulled-in tissue around a faint centre, filed as a mass of shape
        # "distortion" (CBIS-DDSM files it as a mass with shape ARCHITECTURAL_DISTORTION)
        kind, shape, radius = "mass", "distortion", rng.uniform(22, 40) * params.lesion_size
    elif kind == "mass":
        shape = rng.choice(["irregular", "spiculated"]) if pathology == "malignant" else rng.choice(["round", "oval"])
    else:
        # malignant: fine pleomorphic (varied, elongated dots) or fine linear branching (strung along ducts);
        # benign: punctate (round, uniform) or rim (lucent-centred); the cluster's extent is the same for both
        shape = rng.choice(["fine-pleomorphic", "fine-linear"]) if pathology == "malignant" else \
            rng.choice(["punctate", "rim"])
        radius = rng.uniform(22, 45) * params.lesion_size
        dot = rng.uniform(2.0, 4.5) * params.lesion_size
    return {
        "kind": kind,
        "pathology": pathology,
        "shape": str(shape),
        "radius": float(radius),
        "dot": float(dot),
        "contrast": lesion_contrast(rng, kind, params),
        "depth": float(rng.uniform(0.25, 0.8)),
        "offset_cc": float(rng.uniform(-1, 1)),
        "offset_mlo": float(rng.uniform(-1, 1)),
        "shape_seed": int(rng.integers(2**31)),
    }


def lesion_position(lesion: dict, view: str, geom: dict, breast: np.ndarray, pect: np.ndarray) -> tuple[int, int]:
    """Place a lesion at the same depth from the chest wall in both views (offset differs by projection)."""
    h, _ = breast.shape
    off = lesion["offset_cc"] if view == "CC" else lesion["offset_mlo"]
    lo, hi = geom["y_top"], geom["y_bot"]
    if view == "MLO":
        lo = lo + 0.25 * (hi - lo)
    depth = lesion["depth"]
    for _ in range(20):
        r = int(np.clip((lo + hi) / 2 + off * (hi - lo) * 0.32, 0, h - 1))
        c = int(depth * geom["edge"][r])
        if breast[r, c] and not pect[r, c] and c > 2:
            return r, c
        depth *= 0.9
        off *= 0.8
    rows, cols = np.nonzero(breast & ~pect)
    k = len(rows) // 2
    return int(rows[k]), int(cols[k])


def _window(h: int, w: int, r0: int, c0: int, half: int) -> tuple[int, int, int, int]:
    return max(0, r0 - half), min(h, r0 + half + 1), max(0, c0 - half), min(w, c0 + half + 1)


def retract(signal: np.ndarray, r0: int, c0: int, radius: float, strength: float) -> None:
    """Architectural distortion, in place: the tissue around (r0, c0) pulled towards it, so that strands bend and
    converge on the lesion (sampling each point from further out, most strongly at ``radius``)."""
    h, w = signal.shape
    rs, re, cs, ce = _window(h, w, r0, c0, int(np.ceil(3.5 * radius)) + 2)
    yy, xx = np.mgrid[rs:re, cs:ce].astype(np.float32)
    dy, dx = yy - r0, xx - c0
    d2 = dy**2 + dx**2
    k = 1.0 + strength * np.exp(-d2 / (2 * (1.3 * radius) ** 2))
    coords = np.stack([r0 + dy * k, c0 + dx * k])
    signal[rs:re, cs:ce] = ndimage.map_coordinates(signal, coords, order=1, mode="nearest")


def _spicules(prof: np.ndarray, dy: np.ndarray, dx: np.ndarray, R: float, n: int, rng: np.random.Generator,
              strength: float, reach: tuple[float, float] = (1.6, 2.8)) -> None:
    """Thin curved spicules radiating from the centre (in place, max-combined): each a random walk whose direction
    drifts, tapering towards its tip."""
    for ang in rng.uniform(0, 2 * np.pi, n):
        length = R * rng.uniform(*reach)
        steps = 24
        turn = np.cumsum(rng.normal(0, 0.06, steps))
        seg = length / steps
        py, px = 0.0, 0.0
        width0 = max(0.45, 0.07 * R)
        r_c, c_c = -dy[0, 0], -dx[0, 0]  # the window's origin relative to the centre
        box = int(np.ceil(4 * width0)) + 1
        for i in range(steps):
            py += seg * np.sin(ang + turn[i])
            px += seg * np.cos(ang + turn[i])
            frac = 1 - i / steps
            width = width0 * (0.4 + 0.6 * frac)
            r, c = int(round(py + r_c)), int(round(px + c_c))  # a small box around the point is enough
            rs, re, cs, ce = max(0, r - box), min(prof.shape[0], r + box + 1), max(0, c - box), \
                min(prof.shape[1], c + box + 1)
            if rs >= re or cs >= ce:
                continue
            sub = np.exp(-0.5 * ((dy[rs:re, cs:ce] - py) ** 2 + (dx[rs:re, cs:ce] - px) ** 2) / width**2)
            np.maximum(prof[rs:re, cs:ce], sub * strength * frac, out=prof[rs:re, cs:ce])


#: the integral of a circumscribed mass's profile over its disc, per unit area (0.8 + 0.2/3)
_DISC_DENSITY = 0.8 + 0.2 / 3


def render_mass(lesion: dict, h: int, w: int, r0: int, c0: int, scale: float) -> tuple[np.ndarray, np.ndarray, tuple]:
    """Mass profile (0..1) and mask in a local window: benign round/oval with circumscribed margins, malignant
    irregular (lobulated, ill-defined margins that fade into the tissue) or spiculated; an architectural
    distortion is spicules around a faint centre (its tissue pull is :func:`retract`)."""
    rng = np.random.default_rng(lesion["shape_seed"])
    R = lesion["radius"] * scale
    rs, re, cs, ce = _window(h, w, r0, c0, int(np.ceil(R * 3.2)) + 2)
    yy, xx = np.mgrid[rs:re, cs:ce].astype(np.float32)
    dy, dx = yy - r0, xx - c0
    theta = np.arctan2(dy, dx)
    malignant = lesion["pathology"] == "malignant"
    aspect = rng.uniform(1.0, 1.4)
    rot = rng.uniform(0, np.pi)
    u = dx * np.cos(rot) + dy * np.sin(rot)
    v = -dx * np.sin(rot) + dy * np.cos(rot)
    rad = np.sqrt((u / aspect) ** 2 + v**2)
    if malignant:  # irregular outline: random harmonics of the radius; a margin that blurs into the tissue
        Rt = np.ones_like(theta)
        for k in range(2, 9):
            Rt += rng.normal(0, 0.24 / np.sqrt(k)) * np.cos(k * theta + rng.uniform(0, 2 * np.pi))
        Rt = R * np.clip(Rt, 0.5, 1.6)
        margin = max(0.9, 0.25 * R) * (1 + 0.3 * np.cos(3 * theta + rng.uniform(0, 6.3)))
    else:
        Rt = np.full_like(theta, R)
        margin = max(0.4, 0.05 * R)  # circumscribed
    prof = 1.0 / (1.0 + np.exp(np.clip((rad - Rt) / margin, -50, 50)))
    prof *= 0.8 + 0.2 * np.clip(1 - rad / (Rt + 1e-6), 0, 1)
    mask = rad <= Rt * (1.1 if malignant else 1.0)
    if lesion["shape"] == "distortion":
        prof *= 0.25
        mask = rad <= R * 1.2
    if lesion["shape"] in ("spiculated", "distortion"):
        _spicules(prof, dy, dx, R, int(rng.integers(10, 18)), rng, 0.55)
    if lesion["shape"] != "distortion":  # integrated density of a circumscribed mass of this size, whatever the form
        prof *= _DISC_DENSITY * np.pi * R**2 * aspect / max(float(prof.sum()), 1e-6)
    return prof.astype(np.float32), mask, (rs, re, cs, ce)


def _dot(xx: np.ndarray, yy: np.ndarray, py: float, px: float, sig: float, elong: float, rot: float,
         rim: bool) -> np.ndarray:
    """One calcification: a Gaussian of area ``sig**2`` stretched ``elong`` times along ``rot`` (its area kept),
    or with a lucent centre (``rim``)."""
    du, dv = xx - px, yy - py
    u = du * np.cos(rot) + dv * np.sin(rot)
    v = -du * np.sin(rot) + dv * np.cos(rot)
    blob = np.exp(-0.5 * ((u / (sig * np.sqrt(elong))) ** 2 + (v * np.sqrt(elong) / sig) ** 2))
    if rim:  # eggshell: the centre's calcium missing
        blob = np.clip(blob - 0.8 * np.exp(-0.5 * (u**2 + v**2) / (0.55 * sig) ** 2), 0, None) * 1.6
    return blob


def render_calcs(lesion: dict, h: int, w: int, r0: int, c0: int, scale: float) -> tuple[np.ndarray, np.ndarray, tuple]:
    """Calcification cluster: benign punctate (round dots of one size) or rim (lucent-centred), scattered over the
    cluster; malignant fine pleomorphic (dots of varied size and elongation) or fine linear branching (dots strung
    along two or three short segments, as along a duct). Dot count, mean dot size and peak contrast come from the
    same distributions for both pathologies."""
    rng = np.random.default_rng(lesion["shape_seed"])
    R = lesion["radius"] * scale
    dot = lesion["dot"] * scale
    rs, re, cs, ce = _window(h, w, r0, c0, int(np.ceil(R * 1.3 + 4 * dot)) + 3)
    yy, xx = np.mgrid[rs:re, cs:ce].astype(np.float32)
    prof = np.zeros(yy.shape, np.float32)
    malignant = lesion["pathology"] == "malignant"
    n = int(rng.integers(6, 16))
    centres = []
    if lesion["shape"] == "fine-linear":
        segs = int(rng.integers(2, 4))
        base = rng.uniform(0, 2 * np.pi)
        for k in range(segs):
            ang, start = base + rng.normal(0, 0.5), rng.uniform(-0.3, 0.3, 2) * R
            for t in np.linspace(0, 0.9 * R, max(2, n // segs)):
                centres.append((r0 + start[0] + t * np.sin(ang), c0 + start[1] + t * np.cos(ang)))
    while len(centres) < n:
        rr = R * np.sqrt(rng.uniform(0, 1))
        ang = rng.uniform(0, 2 * np.pi)
        centres.append((r0 + rr * np.sin(ang), c0 + rr * np.cos(ang)))
    for py, px in centres[:n]:
        size = dot * (rng.uniform(0.5, 1.5) if malignant else rng.uniform(0.9, 1.1))
        elong = rng.uniform(1.0, 3.0) if malignant else 1.0
        blob = _dot(xx, yy, py, px, max(size, 0.55), elong, rng.uniform(0, np.pi), lesion["shape"] == "rim")
        np.maximum(prof, blob * rng.uniform(0.7, 1.0), out=prof)
    mask = (yy - r0) ** 2 + (xx - c0) ** 2 <= (R * 1.15 + dot) ** 2
    return prof, mask, (rs, re, cs, ce)
