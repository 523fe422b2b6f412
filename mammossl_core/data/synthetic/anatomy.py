"""The breast's anatomy: its outline, pectoral muscle and skin, and the tissue inside (subcutaneous fat, the
fibroglandular cone with its ``1/f^beta`` texture, strands and ducts converging on the nipple, fat lobules bounded by
Cooper's ligaments); what the two views of a breast share is drawn once (:func:`draw_anatomy`)."""
from __future__ import annotations

import numpy as np
from scipy import ndimage

from .params import SynthParams


DENSITY_FRACTION = {"a": 0.12, "b": 0.28, "c": 0.5, "d": 0.72}


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


def lowfreq_1d(n: int, rng: np.random.Generator, k: int = 4) -> np.ndarray:
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
    wobble = 1.0 + 0.03 * lowfreq_1d(h, rng)
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
