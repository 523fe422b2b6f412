"""The synthetic mammogram generator: the embedded default dataset, with pixel-exact ground truth.

No real mammogram can be downloaded where this project is built, so every experiment runs by default on
synthetic screening exams that mimic what matters for the paper (section III):

* anatomy: a breast attached to the chest wall on the left of the image (the project's orientation
  convention), a skin line with thickness fall-off, the pectoral muscle on MLO views, and fibroglandular
  texture with a power-law spectrum ``1/f^beta`` (beta ~ 3, as measured on real films) at a BI-RADS density a-d;
* lesions with masks: masses (benign round/oval and circumscribed, malignant irregular or spiculated with
  ill-defined margins) and calcification clusters (benign coarse and scattered, malignant fine, pleomorphic and
  clustered); a lesion appears in both the CC and MLO view of its breast; lesions cover a small part of the
  image (the "needle in a haystack" of the paper);
* two acquisition domains (paper Fig. 7): ``ddsm`` (scanned film: non-linear film response, grain, film-edge
  bands and burned-in labels) and ``cmmd`` (full-field digital).

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

GENERATOR_VERSION = "1.0"
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

    @classmethod
    def of(cls, profile: str | Profile | None = None, domain: str = "ddsm", **overrides) -> "SynthParams":
        """The parameters of ``domain`` at ``profile`` (:class:`~mammossl_core.config.SynthConfig`), with
        ``overrides`` (e.g. ``lesion_contrast=0.1``); unknown names raise ``ValueError``."""
        prof = resolve(profile)
        h, w = image_size(prof, domain)
        c = prof.synth
        values = dict(height=h, width=w, domain=domain, malignant_fraction=c.malignant_fraction,
                      benign_fraction=c.benign_fraction, lesion_contrast=c.lesion_contrast,
                      lesion_size=c.lesion_size, texture_beta=c.texture_beta)
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


def breast_shape(view: str, h: int, w: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, dict]:
    """Breast and pectoral-muscle masks for a CC or MLO view, chest wall at x = 0."""
    y = np.arange(h, dtype=np.float32)
    wobble = 1.0 + 0.03 * _lowfreq_1d(h, rng)
    if view == "CC":
        cy, b = h * rng.uniform(0.45, 0.55), h * rng.uniform(0.27, 0.37)
        a, p = w * rng.uniform(0.42, 0.60), rng.uniform(1.8, 2.4)
        t = np.clip(np.abs(y - cy) / b, 0, 1)
        edge = a * (1 - t**p) ** (1 / p) * wobble
        y_top, y_bot = cy - b, cy + b
    else:  # MLO: the breast reaches the top edge (axilla) and hangs down
        y_bot = h * rng.uniform(0.80, 0.92)
        a = w * rng.uniform(0.42, 0.58)
        t = np.clip((y + 0.08 * h) / (y_bot + 0.08 * h), 0, 1)
        edge = a * np.clip(np.sin(np.pi * t**0.85), 0, 1) ** 0.6 * wobble
        edge = np.maximum(edge, np.where(y < 0.2 * h, w * 0.3 * (1 - y / (0.2 * h)), 0))
        y_top = 0.0
    xx = np.arange(w, dtype=np.float32)[None, :]
    breast = xx < edge[:, None]
    pect = np.zeros_like(breast)
    geom = {"a": float(a), "y_top": float(y_top), "y_bot": float(y_bot), "edge": edge}
    if view == "MLO":
        pw, ph = w * rng.uniform(0.22, 0.38), h * rng.uniform(0.38, 0.6)
        curve = rng.uniform(1.0, 1.4)
        yy = y[:, None]
        pect = (xx < pw * np.clip(1 - yy / ph, 0, 1) ** curve) & breast
    return breast, pect, geom


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


def render_mass(lesion: dict, h: int, w: int, r0: int, c0: int, scale: float) -> tuple[np.ndarray, np.ndarray, tuple]:
    """Mass profile (0..1) and mask in a local window; benign round/oval, malignant irregular/spiculated."""
    rng = np.random.default_rng(lesion["shape_seed"])
    R = lesion["radius"] * scale
    half = int(np.ceil(R * 3.2)) + 2
    rs, re, cs, ce = max(0, r0 - half), min(h, r0 + half + 1), max(0, c0 - half), min(w, c0 + half + 1)
    yy, xx = np.mgrid[rs:re, cs:ce].astype(np.float32)
    dy, dx = yy - r0, xx - c0
    theta = np.arctan2(dy, dx)
    malignant = lesion["pathology"] == "malignant"
    aspect = rng.uniform(1.0, 1.5) if not malignant else 1.0
    rot = rng.uniform(0, np.pi)
    u = dx * np.cos(rot) + dy * np.sin(rot)
    v = -dx * np.sin(rot) + dy * np.cos(rot)
    rad = np.sqrt((u / aspect) ** 2 + v**2)
    if malignant:  # irregular outline: random harmonics of the radius
        Rt = np.ones_like(theta)
        for k in range(2, 8):
            Rt += rng.normal(0, 0.22 / np.sqrt(k)) * np.cos(k * theta + rng.uniform(0, 2 * np.pi))
        Rt = R * np.clip(Rt, 0.5, 1.6)
        margin = max(0.9, 0.22 * R)  # ill-defined
    else:
        Rt = np.full_like(theta, R)
        margin = max(0.4, 0.05 * R)  # circumscribed
    prof = 1.0 / (1.0 + np.exp((rad - Rt) / margin))
    prof *= 0.75 + 0.25 * np.clip(1 - rad / (Rt + 1e-6), 0, 1)
    mask = rad <= Rt * (1.1 if malignant else 1.0)
    if lesion["shape"] == "spiculated":
        n = rng.integers(8, 16)
        for ang in rng.uniform(0, 2 * np.pi, n):
            length = R * rng.uniform(1.6, 2.8)
            along = dx * np.cos(ang) + dy * np.sin(ang)
            across = -dx * np.sin(ang) + dy * np.cos(ang)
            width = max(0.5, 0.06 * R)
            spic = np.exp(-0.5 * (across / width) ** 2) * ((along > 0) & (along < length)) * (1 - along / length)
            prof = np.maximum(prof, 0.6 * spic)
    return prof.astype(np.float32), mask, (rs, re, cs, ce)


def render_calcs(lesion: dict, h: int, w: int, r0: int, c0: int, scale: float) -> tuple[np.ndarray, np.ndarray, tuple]:
    """Calcification cluster: benign coarse, round and scattered; malignant fine, pleomorphic and clustered."""
    rng = np.random.default_rng(lesion["shape_seed"])
    R = lesion["radius"] * scale
    half = int(np.ceil(R * 1.3)) + 3
    rs, re, cs, ce = max(0, r0 - half), min(h, r0 + half + 1), max(0, c0 - half), min(w, c0 + half + 1)
    yy, xx = np.mgrid[rs:re, cs:ce].astype(np.float32)
    prof = np.zeros(yy.shape, np.float32)
    malignant = lesion["pathology"] == "malignant"
    n = rng.integers(10, 22) if malignant else rng.integers(4, 8)
    dot = lesion["dot"] * scale
    for _ in range(n):
        rr = R * np.sqrt(rng.uniform(0, 1)) * (0.8 if malignant else 1.0)
        ang = rng.uniform(0, 2 * np.pi)
        py, px = r0 + rr * np.sin(ang), c0 + rr * np.cos(ang)
        size = dot * (rng.uniform(0.5, 1.6) if malignant else rng.uniform(0.9, 1.2))
        elong = rng.uniform(1.0, 3.0) if malignant else 1.0  # pleomorphic: elongated, varied
        rot = rng.uniform(0, np.pi)
        du, dv = xx - px, yy - py
        u = du * np.cos(rot) + dv * np.sin(rot)
        v = -du * np.sin(rot) + dv * np.cos(rot)
        sig = max(size, 0.55)
        blob = np.exp(-0.5 * ((u / (sig * elong)) ** 2 + (v / sig) ** 2))
        prof = np.maximum(prof, blob * rng.uniform(0.7, 1.0))
    mask = (yy - r0) ** 2 + (xx - c0) ** 2 <= (R * 1.15 + dot) ** 2
    return prof, mask, (rs, re, cs, ce)


def _film_response(s: np.ndarray) -> np.ndarray:
    """Sigmoid characteristic (H&D) curve of screen film, 0 -> 0."""
    lo = 1.0 / (1.0 + np.exp(5.5 * 0.5))
    return (1.0 / (1.0 + np.exp(-5.5 * (s - 0.5))) - lo) / (1 - 2 * lo)


def render_image(
    params: SynthParams, view: str, density: str, lesions: list[dict], rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """One synthetic mammogram: (uint16 image, breast mask, one mask per lesion)."""
    h, w = params.height, params.width
    scale = h / 1152.0  # lesion sizes are given at the paper's CBIS-DDSM scale
    breast, pect, geom = breast_shape(view, h, w, rng)
    dist = ndimage.distance_transform_edt(breast)
    skin = 0.06 * w
    u = np.clip(dist / skin, 0, 1)
    thickness = np.sqrt(1 - (1 - u) ** 2)

    texture = power_law_noise((h, w), params.texture_beta, rng)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    cy = (geom["y_top"] + geom["y_bot"]) / 2
    radial = np.exp(-(((xx - 0.35 * geom["a"]) / (0.6 * geom["a"])) ** 2 + ((yy - cy) / (0.45 * (geom["y_bot"] - geom["y_top"]) + 1)) ** 2))
    drive = texture + 1.5 * radial
    inside = breast & ~pect
    thr = np.quantile(drive[inside], 1 - DENSITY_FRACTION[density])
    gland = 1.0 / (1.0 + np.exp(-(drive - thr) / 0.45))
    fine = power_law_noise((h, w), 1.6, rng)

    signal = 0.30 + 0.42 * gland + 0.025 * fine
    signal = np.where(pect, 0.55 + 0.04 * texture + 0.03 * fine, signal)

    lesion_masks = []
    for les in lesions:
        r0, c0 = _lesion_position(les, view, geom, breast, pect)
        render = render_mass if les["kind"] == "mass" else render_calcs
        prof, m, (rs, re, cs, ce) = render(les, h, w, r0, c0, scale)
        amp = params.lesion_contrast * (1.0 if les["kind"] == "mass" else 3.0)
        signal[rs:re, cs:ce] += amp * prof * breast[rs:re, cs:ce]
        full = np.zeros((h, w), bool)
        full[rs:re, cs:ce] = m
        lesion_masks.append(full & breast)
    signal = signal * thickness * breast

    if params.domain == "ddsm":
        v = _film_response(signal * 0.82)
        v = v * (1 + 0.035 * rng.standard_normal((h, w)).astype(np.float32))  # film grain
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
    else:  # digital detector: log-like processing, quantum noise, clean air background
        v = np.where(breast, 0.10 + 0.70 * np.clip(signal, 0, 1) ** 0.8, 0.0)
        v = v + breast * 0.008 * rng.standard_normal((h, w)).astype(np.float32)
    img = np.clip(np.round(np.clip(v, 0, 1) * 65535), 0, 65535).astype(np.uint16)
    return img, breast, lesion_masks


def _draw_lesion(rng: np.random.Generator, pathology: str, params: SynthParams) -> dict:
    kind = "mass" if rng.random() < 0.5 else "calc"
    if kind == "mass":
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


def generate_patient(args: tuple[int, int, SynthParams, str]) -> tuple[list[dict], list[dict]]:
    """Render and write all images of one patient; returns (image rows, lesion rows)."""
    index, seed, params, out = args
    out = Path(out)
    rng = np.random.default_rng([seed, index])
    pid = f"{params.domain.upper()}-P{index:05d}"
    density = str(rng.choice(list("abcd"), p=[0.1, 0.4, 0.4, 0.1]))
    sides = ["L", "R"] if rng.random() < 0.6 else [str(rng.choice(["L", "R"]))]
    images, lesion_rows = [], []
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
        for view in ("CC", "MLO"):
            image_id = f"{pid}_{side}_{view}"
            img, _, masks = render_image(params, view, density, lesions, rng)
            write_png16(out / "images" / f"{image_id}.png", img)
            for k, (les, m) in enumerate(zip(lesions, masks)):
                mask_path = f"masks/{image_id}_{k}.png"
                write_mask(out / mask_path, m)
                rows, cols = np.nonzero(m)
                lesion_rows.append({
                    "image_id": image_id, "lesion_id": f"{pid}_{side}_{k}", "kind": les["kind"],
                    "pathology": les["pathology"], "mask_path": mask_path, "shape": les["shape"],
                    "center_row": int(rows.mean()) if len(rows) else -1,
                    "center_col": int(cols.mean()) if len(cols) else -1,
                    "area_px": int(m.sum()),
                })
            images.append({
                "image_id": image_id, "patient_id": pid, "laterality": side, "view": view,
                "label": int(any(l["pathology"] == "malignant" for l in lesions)),
                "path": f"images/{image_id}.png", "density": density, "status": status,
                "height": params.height, "width": params.width,
            })
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
