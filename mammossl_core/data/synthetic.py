"""The synthetic mammogram generator: the embedded default dataset, with pixel-exact ground truth.

No real mammogram can be downloaded where this project is built, so every experiment runs by default on
synthetic screening exams that mimic what matters for the paper (section III):

* anatomy (generator 2.0, after the ideas of procedural breast phantoms such as VICTRE's breastPhantom and OpenVCT,
  reduced to a fast 2-D projection): a breast attached to the chest wall on the left of the image (the project's
  orientation convention) with a nipple, a compressed-thickness fall-off that darkens it towards a thin skin line, a
  subcutaneous fat layer, a fibroglandular cone behind the nipple that is denser towards the chest wall (BI-RADS
  density a-d = its share of the breast) with a ``1/f^beta`` texture, fibrous strands and ducts converging on the
  nipple, fat lobules bounded by Cooper's ligaments, and on MLO views the pectoral muscle with a soft convex edge; the
  two views of a breast share its size, density and tissue seed (:func:`draw_anatomy`). Measured with the real-film
  estimator (:mod:`mammossl_core.data.texture`) at the paper size, slope and intensity fall in the real films' ranges;
* lesions with masks: masses (benign round/oval and circumscribed, malignant irregular with margins that fade into
  the tissue, or spiculated: curved spicules and tissue pulled in towards the mass), architectural distortion
  (spicules and retraction around a faint centre, filed as a mass of shape "distortion") and calcification clusters (benign coarse and
  scattered, malignant fine pleomorphic or fine linear, clustered); a lesion appears in both the CC and MLO view of its breast; lesions cover a small part of the
  image (the "needle in a haystack" of the paper);
* two acquisition domains (paper Fig. 7): ``ddsm`` (scanned film: non-linear film response, fine grain, film-edge
  bands and burned-in labels) and ``cmmd`` (full-field digital: linear processing, quantum noise, clean background).

Every patient is drawn from its own random stream ``(seed, patient index)``, so files are byte-identical for the
same arguments whatever the number of worker processes.
"""
from __future__ import annotations

import multiprocessing as mp
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import ndimage
from tqdm.auto import tqdm

from ..config import Profile, image_size, resolve
from .layout import write_dataset, write_mask, write_png16

GENERATOR_VERSION = "2.0"
DENSITY_FRACTION = {"a": 0.12, "b": 0.28, "c": 0.5, "d": 0.72}


@dataclass(frozen=True)
class SynthParams:
    """Parameters of one synthetic dataset: the image size of a domain and the generator's settings, all taken
    from a profile (:meth:`of`), never defaulted here."""

    height: int
    width: int
    domain: str
    malignant_fraction: float
    benign_fraction: float
    lesion_contrast: float
    lesion_size: float
    texture_beta: float
    distortion_share: float

    @classmethod
    def of(cls, profile: str | Profile | None = None, domain: str = "ddsm", **overrides) -> "SynthParams":
        """The parameters of ``domain`` at ``profile`` (:class:`~mammossl_core.config.SynthConfig`), with
        ``overrides`` (e.g. ``lesion_contrast=0.1``); unknown names raise ``ValueError``."""
        prof = resolve(profile)
        h, w = image_size(prof, domain)
        c = prof.synth
        values = dict(height=h, width=w, domain=domain, malignant_fraction=c.malignant_fraction,
                      benign_fraction=c.benign_fraction, lesion_contrast=c.lesion_contrast,
                      lesion_size=c.lesion_size, texture_beta=c.texture_beta,
                      distortion_share=c.distortion_share)
        bad = set(overrides) - set(values)
        if bad:
            raise ValueError(f"unknown synthetic parameter(s) {sorted(bad)}; known: {sorted(values)}")
        return cls(**{**values, **overrides})


def power_law_noise(shape: tuple[int, int], beta: float, rng: np.random.Generator) -> np.ndarray:
    """Gaussian random field whose power spectrum falls as ``1/f^beta``; zero mean, unit variance."""
    h, w = shape
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.rfftfreq(w)[None, :]
    f = np.sqrt(fx**2 + fy**2)
    f[0, 0] = 1.0
    amp = f ** (-beta / 2.0)
    amp[0, 0] = 0.0
    spec = (rng.standard_normal(amp.shape) + 1j * rng.standard_normal(amp.shape)) * amp
    field = np.fft.irfft2(spec, s=shape)
    field -= field.mean()
    return (field / (field.std() + 1e-12)).astype(np.float32)


def _lowfreq_1d(n: int, rng: np.random.Generator, k: int = 4) -> np.ndarray:
    t = np.linspace(0, 1, n)
    out = np.zeros(n)
    for i in range(1, k + 1):
        out += rng.normal(0, 1.0 / i) * np.sin(np.pi * i * t + rng.uniform(0, 2 * np.pi))
    return out / k


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return (0.5 * (1.0 + np.tanh(0.5 * x))).astype(np.float32)


def draw_anatomy(rng: np.random.Generator, density: str) -> dict:
    """What one breast keeps in both of its views: size, shape, BI-RADS density, how far the glandular cone
    reaches, and the seed of its tissue (so that CC and MLO show the same parenchyma pattern)."""
    return {
        "density": density,
        "depth": float(rng.uniform(0.44, 0.58)),  # chest wall to nipple, share of the image width (CC)
        "half_height": float(rng.uniform(0.28, 0.36)),  # CC half height, share of the image height
        "roundness": float(rng.uniform(1.8, 2.4)),
        "cone": float(rng.uniform(0.45, 0.7)),  # half-angle (rad) of the fibroglandular cone behind the nipple
        "subcutaneous": float(rng.uniform(0.025, 0.045)),  # fat layer under the skin, share of the width
        "tissue_seed": int(rng.integers(2**31)),
    }


def breast_shape(view: str, h: int, w: int, rng: np.random.Generator, anatomy: dict | None = None
                 ) -> tuple[np.ndarray, np.ndarray, dict]:
    """Breast and pectoral-muscle masks of a CC or MLO view, chest wall at x = 0, and the geometry (outline
    ``edge`` per row, nipple, each pixel's distance to the skin, pectoral line). The pectoral mask is the muscle's core; its soft curved edge is
    ``geom["pect_distance"]`` (signed, pixels, > 0 inside)."""
    anatomy = anatomy or draw_anatomy(rng, "b")
    y = np.arange(h, dtype=np.float32)
    wobble = 1.0 + 0.03 * _lowfreq_1d(h, rng)
    xx = np.arange(w, dtype=np.float32)[None, :]
    if view == "CC":
        cy, b = h * rng.uniform(0.46, 0.54), h * anatomy["half_height"]
        a, p = w * anatomy["depth"], anatomy["roundness"]
        t = np.clip(np.abs(y - cy) / b, 0, 1)
        edge = a * (1 - t**p) ** (1 / p) * wobble
        y_top, y_bot = cy - b, cy + b
    else:  # MLO: the breast reaches the top edge (axilla) and hangs down; compression makes it a little longer
        y_bot = h * rng.uniform(0.80, 0.92)
        a = w * anatomy["depth"] * 1.04
        t = np.clip((y + 0.08 * h) / (y_bot + 0.08 * h), 0, 1)
        edge = a * np.clip(np.sin(np.pi * t**0.85), 0, 1) ** 0.6 * wobble
        edge = np.maximum(edge, np.where(y < 0.2 * h, w * 0.3 * (1 - y / (0.2 * h)), 0))
        y_top = 0.0
    breast = xx < edge[:, None]
    ny = int(np.argmax(edge))
    nx = float(edge[ny])
    rn = max(1.5, 0.018 * w)  # the nipple: a small bump at the front of the breast
    yy = y[:, None]
    breast |= (yy - ny) ** 2 + (xx - nx + 0.4 * rn) ** 2 <= rn**2
    geom = {"a": float(a), "y_top": float(y_top), "y_bot": float(y_bot), "edge": edge, "nipple": (ny, nx),
            "skin_distance": ndimage.distance_transform_edt(breast).astype(np.float32)}
    pect = np.zeros_like(breast)
    geom["pect_distance"] = np.full((h, w), -1e3, np.float32)
    if view == "MLO":  # a convex curved front edge, softened by the renderer
        pw, ph = w * rng.uniform(0.22, 0.36), h * rng.uniform(0.40, 0.62)
        curve = rng.uniform(0.6, 0.9)
        front = pw * np.clip(1 - yy / ph, 0, 1) ** curve  # x of the muscle's edge on each row
        geom["pect_distance"] = (front - xx).astype(np.float32)
        pect = (geom["pect_distance"] > 0) & breast
    return breast, pect, geom


def _strands(h: int, w: int, geom: dict, scale: float, rng: np.random.Generator) -> np.ndarray:
    """Fibrous strands and ducts converging on the nipple: thin curvilinear ridges (0..1). The zero set of a smooth
    random field that varies slowly along the direction to the nipple and fast across it, sampled in polar
    coordinates around the nipple with a smooth angular warp so that the strands curve."""
    ny, nx = geom["nipple"]
    a = geom["a"]
    n_phi, n_r = max(96, int(700 * scale)), max(32, int(160 * scale))
    field = ndimage.gaussian_filter(rng.standard_normal((n_phi, n_r)).astype(np.float32),
                                    (1.3, n_r * 0.15), mode=("wrap", "nearest"))
    field /= field.std() + 1e-6
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    r = np.hypot(yy - ny, xx - nx) / a
    phi = np.arctan2(yy - ny, nx - xx) + 0.12 * power_law_noise((h, w), 4.0, rng) * np.clip(r, 0, 1)
    coords = np.stack([(phi / (2 * np.pi) % 1.0) * n_phi, np.clip(r, 0, 1.5) / 1.5 * (n_r - 1)])
    s = ndimage.map_coordinates(field, coords, order=1, mode="grid-wrap")
    width = 0.35 * np.clip(r * 2.5, 0.4, 1.0)  # thinner towards the nipple, where they converge
    return np.exp(-((s / width) ** 2)).astype(np.float32)


def _lobules(h: int, w: int, scale: float, rng: np.random.Generator) -> np.ndarray:
    """Fat lobules bounded by thin connective septa (Cooper's ligaments): the boundaries of a Voronoi tessellation
    of random seeds (each pixel labelled by its nearest seed through the distance transform), blurred to the
    septa's width (0..1, 1 on a septum)."""
    spacing = max(6.0, 34.0 * scale)
    n = max(8, int(h * w / spacing**2))
    seeds = np.ones((h, w), bool)
    seeds[rng.integers(0, h, n), rng.integers(0, w, n)] = False
    idx = ndimage.distance_transform_edt(seeds, return_distances=False, return_indices=True)
    label = idx[0] * w + idx[1]
    edge = np.zeros((h, w), np.float32)
    edge[:-1] += label[:-1] != label[1:]
    edge[:, :-1] += label[:, :-1] != label[:, 1:]
    sigma = max(0.6, 1.4 * scale)
    return np.clip(ndimage.gaussian_filter(np.minimum(edge, 1.0), sigma) * 2.5 * sigma, 0, 1).astype(np.float32)


def tissue(view: str, geom: dict, breast: np.ndarray, anatomy: dict, params: "SynthParams",
           parts: dict | None = None) -> np.ndarray:
    """The breast's X-ray attenuation before compression fall-off and detector (0..~1): fat, a fibroglandular
    cone behind the nipple that is denser towards the chest wall, BI-RADS density as the glandular share of the
    breast, strands and ducts converging on the nipple, fat lobules with their septa, a subcutaneous fat layer and
    the pectoral muscle (MLO) with a soft edge and its own fibres. ``parts``, when given, receives a boolean map of
    each anatomical part (for the figure that names them)."""
    h, w = breast.shape
    scale = h / 1152.0
    rng = np.random.default_rng([anatomy["tissue_seed"], 0 if view == "CC" else 1])
    a = geom["a"]
    ny, nx = geom["nipple"]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    dist = geom["skin_distance"]
    phi = np.arctan2(yy - ny, nx - xx)
    depth = np.clip(xx / a, 0, 1.2)  # 0 at the chest wall, 1 at the nipple
    cone = np.exp(-0.5 * (phi / anatomy["cone"]) ** 2) * (1.15 - 0.55 * depth)
    subq = _sigmoid((dist - anatomy["subcutaneous"] * w) / max(1.0, 0.012 * w))

    texture = power_law_noise((h, w), params.texture_beta, rng)
    strands = _strands(h, w, geom, scale, rng)
    lobules = _lobules(h, w, scale, rng)
    patchy = _sigmoid(2.5 * power_law_noise((h, w), 3.5, rng))  # strands show in some regions more than others
    strands *= 0.3 + 0.7 * patchy
    drive = 1.4 * cone * subq + 0.8 * texture + 0.25 * strands
    inside = breast & (geom["pect_distance"] <= 0)
    thr = np.quantile(drive[inside], 1 - DENSITY_FRACTION[anatomy["density"]])
    gland = _sigmoid((drive - thr) / 0.3) * subq

    fat = 1.0 - gland
    signal = (0.30 + 0.38 * gland + 0.045 * strands * (0.5 + fat) + 0.05 * lobules * fat * (1.0 - 0.5 * subq)
              + 0.035 * texture)
    if view == "MLO":  # the muscle: denser than glands, fibres running along it, a soft convex edge
        fibres = ndimage.gaussian_filter(rng.standard_normal((h, w)).astype(np.float32), (6 * scale + 1, 1.0))
        muscle = 0.62 + 0.03 * texture + 0.15 * fibres
        m = _sigmoid(geom["pect_distance"] / max(0.8, 4.0 * scale))
        signal = signal * (1 - m) + muscle * m
    if parts is not None:
        pec = geom["pect_distance"] > 0
        parts.update({"subcutaneous fat": breast & (subq < 0.5) & ~pec, "fibroglandular tissue": breast & (gland > 0.5),
                      "strands and ducts": breast & (strands > 0.55) & ~pec,
                      "lobule septa (Cooper's ligaments)": breast & (lobules > 0.6) & (gland < 0.5) & ~pec,
                      "pectoral muscle": breast & pec})
    return ndimage.gaussian_filter(signal, max(0.3, 0.4 * scale)).astype(np.float32)


def _lesion_position(lesion: dict, view: str, geom: dict, breast: np.ndarray, pect: np.ndarray) -> tuple[int, int]:
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
    aspect = rng.uniform(1.0, 1.5) if not malignant else rng.uniform(1.0, 1.2)
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
    return prof.astype(np.float32), mask, (rs, re, cs, ce)


def render_calcs(lesion: dict, h: int, w: int, r0: int, c0: int, scale: float) -> tuple[np.ndarray, np.ndarray, tuple]:
    """Calcification cluster: benign coarse, round and scattered; malignant fine pleomorphic or fine linear
    (dots strung along short branching segments, as along a duct), clustered."""
    rng = np.random.default_rng(lesion["shape_seed"])
    R = lesion["radius"] * scale
    dot = lesion["dot"] * scale
    rs, re, cs, ce = _window(h, w, r0, c0, int(np.ceil(R * 1.3 + 4 * dot)) + 3)
    yy, xx = np.mgrid[rs:re, cs:ce].astype(np.float32)
    prof = np.zeros(yy.shape, np.float32)
    malignant = lesion["pathology"] == "malignant"
    n = rng.integers(10, 22) if malignant else rng.integers(4, 8)
    centres = []
    if malignant and rng.random() < 0.5:  # fine linear branching: along 2-3 segments
        for _ in range(int(rng.integers(2, 4))):
            ang, start = rng.uniform(0, 2 * np.pi), rng.uniform(-0.3, 0.3, 2) * R
            for t in np.linspace(0, 0.8 * R, n // 2):
                centres.append((r0 + start[0] + t * np.sin(ang), c0 + start[1] + t * np.cos(ang)))
    while len(centres) < n:
        rr = R * np.sqrt(rng.uniform(0, 1)) * (0.8 if malignant else 1.0)
        ang = rng.uniform(0, 2 * np.pi)
        centres.append((r0 + rr * np.sin(ang), c0 + rr * np.cos(ang)))
    for py, px in centres:
        size = dot * (rng.uniform(0.5, 1.6) if malignant else rng.uniform(0.9, 1.2))
        elong = rng.uniform(1.0, 3.0) if malignant else 1.0  # pleomorphic: elongated, varied
        rot = rng.uniform(0, np.pi)
        du, dv = xx - px, yy - py
        u = du * np.cos(rot) + dv * np.sin(rot)
        v = -du * np.sin(rot) + dv * np.cos(rot)
        sig = max(size, 0.55)
        blob = np.exp(-0.5 * ((u / (sig * elong)) ** 2 + (v / sig) ** 2))
        np.maximum(prof, blob * rng.uniform(0.7, 1.0), out=prof)
    mask = (yy - r0) ** 2 + (xx - c0) ** 2 <= (R * 1.15 + dot) ** 2
    return prof, mask, (rs, re, cs, ce)


def _film_response(s: np.ndarray) -> np.ndarray:
    """Sigmoid characteristic (H&D) curve of screen film, 0 -> 0."""
    lo = 1.0 / (1.0 + np.exp(5.5 * 0.5))
    return (1.0 / (1.0 + np.exp(-5.5 * (s - 0.5))) - lo) / (1 - 2 * lo)


def render_image(
    params: SynthParams, view: str, density: str, lesions: list[dict], rng: np.random.Generator,
    anatomy: dict | None = None, parts: dict | None = None,
) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """One synthetic mammogram: (uint16 image, breast mask, one mask per lesion). ``anatomy``
    (:func:`draw_anatomy`) is what the breast's two views share; drawn from ``rng`` when not given. ``parts``, when
    given, receives a boolean map per anatomical part (:func:`tissue`), the skin line and the nipple."""
    h, w = params.height, params.width
    scale = h / 1152.0  # sizes are given at the paper's CBIS-DDSM scale
    anatomy = anatomy or draw_anatomy(rng, density)
    breast, pect, geom = breast_shape(view, h, w, rng, anatomy)
    signal = tissue(view, geom, breast, anatomy, params, parts)

    lesion_masks = []
    for les in lesions:
        r0, c0 = _lesion_position(les, view, geom, breast, pect)
        if les["shape"] in ("spiculated", "distortion"):  # the tissue pulled in before the lesion is drawn
            retract(signal, r0, c0, les["radius"] * scale, 0.6 if les["shape"] == "distortion" else 0.35)
        render = render_mass if les["kind"] == "mass" else render_calcs
        prof, m, (rs, re, cs, ce) = render(les, h, w, r0, c0, scale)
        amp = params.lesion_contrast * (3.0 if les["kind"] == "calc" else 1.0)
        signal[rs:re, cs:ce] += amp * prof * breast[rs:re, cs:ce]
        full = np.zeros((h, w), bool)
        full[rs:re, cs:ce] = m
        lesion_masks.append(full & breast)

    # compression: full thickness inside, falling off over the last few mm to the skin line (a thin bright rim)
    dist = geom["skin_distance"]
    u = np.clip(dist / (0.06 * w), 0, 1)
    thickness = np.sqrt(1 - (1 - u) ** 2)
    skin = 0.06 * np.exp(-0.5 * (dist / max(0.7, 2.0 * scale)) ** 2)
    signal = (signal * thickness + skin) * breast
    if parts is not None:
        ny, nx = geom["nipple"]
        yy, xx = np.ogrid[0:h, 0:w]
        parts["skin line"] = breast & (dist <= max(1.0, 3.0 * scale))
        parts["nipple"] = breast & ((yy - ny) ** 2 + (xx - nx) ** 2 <= (0.03 * w) ** 2)

    if params.domain == "ddsm":
        v = _film_response(signal * 0.9)
        grain = ndimage.gaussian_filter(rng.standard_normal((h, w)).astype(np.float32), 0.7)
        v = v * (1 + 0.012 * grain)  # film grain, blurred by the scanner's aperture
        v += 0.004 * np.abs(rng.standard_normal((h, w)))  # film base and fog
        v += 0.01 * _lowfreq_1d(w, rng)[None, :] * breast  # scanner non-uniformity
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
    img = np.clip(np.round(np.clip(v, 0, 1) * 65535), 0, 65535).astype(np.uint16)
    return img, breast, lesion_masks


def _draw_lesion(rng: np.random.Generator, pathology: str, params: SynthParams) -> dict:
    kind = "mass" if rng.random() < 0.5 else "calc"
    if pathology == "malignant" and rng.random() < params.distortion_share:
        # architectural distortion: spicules and pulled-in tissue around a faint centre, filed as a mass of shape
        # "distortion" (CBIS-DDSM files it as a mass with shape ARCHITECTURAL_DISTORTION)
        kind, shape, radius, dot = "mass", "distortion", rng.uniform(22, 40) * params.lesion_size, 0.0
    elif kind == "mass":
        shape = rng.choice(["irregular", "spiculated"]) if pathology == "malignant" else rng.choice(["round", "oval"])
        radius = rng.uniform(18, 40) * params.lesion_size  # pixels at 1152 rows
        dot = 0.0
    else:
        shape = "fine-pleomorphic" if pathology == "malignant" else "coarse"
        radius = (rng.uniform(20, 34) if pathology == "malignant" else rng.uniform(30, 55)) * params.lesion_size
        dot = (rng.uniform(2.0, 3.0) if pathology == "malignant" else rng.uniform(4.5, 6.5)) * params.lesion_size
    return {
        "kind": kind,
        "pathology": pathology,
        "shape": str(shape),
        "radius": float(radius),
        "dot": float(dot),
        "depth": float(rng.uniform(0.25, 0.8)),
        "offset_cc": float(rng.uniform(-1, 1)),
        "offset_mlo": float(rng.uniform(-1, 1)),
        "shape_seed": int(rng.integers(2**31)),
    }


def generate_images(index: int, seed: int, params: SynthParams):
    """Render the images of patient ``index`` in memory: yields ``(image row, uint16 image, lesions, lesion masks)``
    per view, in the order :func:`generate_patient` writes them (the same random stream)."""
    rng = np.random.default_rng([seed, index])
    pid = f"{params.domain.upper()}-P{index:05d}"
    density = str(rng.choice(list("abcd"), p=[0.1, 0.4, 0.4, 0.1]))
    sides = ["L", "R"] if rng.random() < 0.6 else [str(rng.choice(["L", "R"]))]
    for side in sides:
        u = rng.random()
        status = "malignant" if u < params.malignant_fraction else (
            "benign" if u < params.malignant_fraction + params.benign_fraction else "normal")
        lesions = []
        if status == "malignant":
            lesions.append(_draw_lesion(rng, "malignant", params))
            if rng.random() < 0.2:
                lesions.append(_draw_lesion(rng, "benign", params))
        elif status == "benign":
            for _ in range(1 if rng.random() < 0.75 else 2):
                lesions.append(_draw_lesion(rng, "benign", params))
        anatomy = draw_anatomy(rng, density)
        for view in ("CC", "MLO"):
            image_id = f"{pid}_{side}_{view}"
            img, _, masks = render_image(params, view, density, lesions, rng, anatomy)
            row = {"image_id": image_id, "patient_id": pid, "laterality": side, "view": view,
                   "label": int(any(l["pathology"] == "malignant" for l in lesions)),
                   "path": f"images/{image_id}.png", "density": density, "status": status,
                   "height": params.height, "width": params.width}
            yield row, img, lesions, masks


def generate_patient(args: tuple[int, int, SynthParams, str]) -> tuple[list[dict], list[dict]]:
    """Render and write all images of one patient; returns (image rows, lesion rows)."""
    index, seed, params, out = args
    out = Path(out)
    images, lesion_rows = [], []
    for row, img, lesions, masks in generate_images(index, seed, params):
        image_id = row["image_id"]
        write_png16(out / row["path"], img)
        for k, (les, m) in enumerate(zip(lesions, masks)):
            mask_path = f"masks/{image_id}_{k}.png"
            write_mask(out / mask_path, m)
            rows, cols = np.nonzero(m)
            lesion_rows.append({
                "image_id": image_id, "lesion_id": f"{row['patient_id']}_{row['laterality']}_{k}",
                "kind": les["kind"], "pathology": les["pathology"], "mask_path": mask_path, "shape": les["shape"],
                "center_row": int(rows.mean()) if len(rows) else -1,
                "center_col": int(cols.mean()) if len(cols) else -1,
                "area_px": int(m.sum()),
            })
        images.append(row)
    return images, lesion_rows


def synthesize(
    out: str | os.PathLike,
    patients: int | None = None,
    seed: int = 0,
    profile: str | Profile = "tiny",
    domain: str = "ddsm",
    workers: int | None = None,
    progress: bool = True,
    **overrides,
) -> Path:
    """Generate a synthetic prepared dataset in ``out`` and return its path.

    ``overrides`` replace :class:`SynthParams` fields (``lesion_contrast``, ``lesion_size``, ...).

    >>> synthesize("data/synth", patients=20, seed=0, profile="tiny")  # doctest: +SKIP
    """
    prof = resolve(profile)
    params = SynthParams.of(prof, domain, **overrides)
    n = patients if patients is not None else prof.synth.patients
    if n < 10:
        raise ValueError(f"patients={n}: at least 10 patients are needed for a 7:1:2 patient-level split")
    out = Path(out)
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "masks").mkdir(parents=True, exist_ok=True)
    jobs = [(i, seed, params, str(out)) for i in range(n)]
    workers = workers or min(os.cpu_count() or 1, 8)
    image_rows, lesion_rows = [], []
    bar = tqdm(total=n, desc=f"synth {domain}", unit="patient", disable=not progress)
    if workers > 1:
        with mp.get_context("spawn" if os.name == "nt" else "fork").Pool(workers) as pool:
            for imgs, les in pool.imap(generate_patient, jobs, chunksize=max(1, n // (workers * 8))):
                image_rows += imgs
                lesion_rows += les
                bar.update()
    else:
        for job in jobs:
            imgs, les = generate_patient(job)
            image_rows += imgs
            lesion_rows += les
            bar.update()
    bar.close()
    images = pd.DataFrame(image_rows)
    lesions = pd.DataFrame(lesion_rows, columns=["image_id", "lesion_id", "kind", "pathology", "mask_path",
                                                 "shape", "center_row", "center_col", "area_px"])
    write_dataset(out, images, lesions, {
        "source": "synthetic", "generator_version": GENERATOR_VERSION,
        "domain": domain, "profile": prof.name, "seed": seed, "patients": n, "parameters": asdict(params),
        "counts": {"images": len(images), "malignant_images": int(images.label.sum()), "lesions": len(lesions)},
        "orientation": "breast on the left, chest wall at column 0",
    }, prof.data.split_ratios[domain], prof.data.cv_folds, seed)
    return out
