"""One mammogram from its parts (anatomy, lesions, compression, acquisition), a patient's exams from one random
stream, and a whole prepared dataset written in parallel."""
from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from ...config import Profile, resolve
from ...io import write_csv
from ..layout import MIMIC_COLUMNS, write_dataset, write_mask, write_png16
from .acquisition import Acquisition, acquire
from .anatomy import breast_shape, draw_anatomy, tissue
from .lesions import draw_lesion, lesion_position, render_calcs, render_mass, retract
from .mimics import draw_mimics, render_mimic
from .params import GENERATOR_VERSION, SynthParams


def render_image(
    params: SynthParams, view: str, density: str, lesions: list[dict], rng: np.random.Generator,
    anatomy: dict | None = None, parts: dict | None = None, mimics: list[dict] = (),
    acquisition: Acquisition | None = None,
) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """One synthetic mammogram: (uint16 image, breast mask, one mask per lesion, then one per mimic of this view).
    ``anatomy`` (:func:`draw_anatomy`) is what the breast's two views share; drawn from ``rng`` when not given, as is
    the ``acquisition``. ``parts``, when given, receives a boolean map per anatomical part (:func:`tissue`), the
    skin line and the nipple."""
    h, w = params.height, params.width
    scale = h / 1152.0  # sizes are given at the paper's CBIS-DDSM scale
    anatomy = anatomy or draw_anatomy(rng, density)
    acquisition = acquisition or Acquisition.draw(rng, params.domain)
    breast, pect, geom = breast_shape(view, h, w, rng, anatomy)
    signal = tissue(view, geom, breast, anatomy, params, parts)

    lesion_masks = []
    for les in lesions:
        r0, c0 = lesion_position(les, view, geom, breast, pect)
        if les["shape"] in ("spiculated", "distortion"):  # the tissue pulled in before the lesion is drawn
            retract(signal, r0, c0, les["radius"] * scale, 0.6 if les["shape"] == "distortion" else 0.35)
        render = render_mass if les["kind"] == "mass" else render_calcs
        prof, m, (rs, re, cs, ce) = render(les, h, w, r0, c0, scale)
        signal[rs:re, cs:ce] += les["contrast"] * prof * breast[rs:re, cs:ce]
        full = np.zeros((h, w), bool)
        full[rs:re, cs:ce] = m
        lesion_masks.append(full & breast)
    for mim in mimics:
        if view not in mim["views"]:
            continue
        r0, c0 = lesion_position(mim, view, geom, breast, pect)
        prof, m, (rs, re, cs, ce) = render_mimic(mim, h, w, r0, c0, scale)
        signal[rs:re, cs:ce] += mim["contrast"] * prof * breast[rs:re, cs:ce]
        full = np.zeros((h, w), bool)
        full[rs:re, cs:ce] = m
        lesion_masks.append(full & breast)

    signal = acquisition.expose(signal)
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

    v = acquire(signal, breast, view, params, rng, acquisition)
    img = np.clip(np.round(np.clip(v, 0, 1) * 65535), 0, 65535).astype(np.uint16)
    return img, breast, lesion_masks


#: each domain's own random streams: the film and the digital datasets drawn with one seed share no patient
DOMAIN_STREAMS = {"ddsm": (), "cmmd": (1,)}
#: the streams of patients drawn for another purpose than a dataset (the difficulty card's oracle trains on them)
PURPOSE_STREAMS = {"dataset": (), "oracle": (7,)}


def patient_stream(seed: int, index: int, domain: str, purpose: str = "dataset") -> list[int]:
    """The entropy of patient ``index``'s random stream: ``[seed, index]`` for film, ``[seed, 1, index]`` for the
    digital domain, ``[seed, ..., 7, index]`` for the oracle's own patients (numpy's SeedSequence gives entropy
    lists that differ independent streams)."""
    return [seed, *DOMAIN_STREAMS[domain], *PURPOSE_STREAMS[purpose], index]


class SynthView(NamedTuple):
    """One rendered view: its ``images.csv`` row, the 16-bit image, the breast's lesions with one mask each (empty
    for the unlabelled pool, whose findings are not annotated) and this view's mimics with theirs."""

    row: dict
    image: np.ndarray
    lesions: list[dict]
    masks: list[np.ndarray]
    mimics: list[dict]
    mimic_masks: list[np.ndarray]


def generate_images(index: int, seed: int, params: SynthParams, unlabeled: bool = False, purpose: str = "dataset"):
    """Render the images of patient ``index`` in memory: yields a :class:`SynthView` per view, in the order
    :func:`generate_patient` writes them (the same random stream). ``unlabeled`` patients (the unlabelled pool) are
    drawn the same way; their rows carry label -1 and no annotation."""
    rng = np.random.default_rng(patient_stream(seed, index, params.domain, purpose))
    pid = f"{params.domain.upper()}-P{index:05d}"
    density = str(rng.choice(list("abcd"), p=[0.1, 0.4, 0.4, 0.1]))
    sides = ["L", "R"] if rng.random() < 0.6 else [str(rng.choice(["L", "R"]))]
    for side in sides:
        u = rng.random()
        status = "malignant" if u < params.malignant_fraction else (
            "benign" if u < params.malignant_fraction + params.benign_fraction else "normal")
        lesions = []
        if status == "malignant":
            lesions.append(draw_lesion(rng, "malignant", params))
            if rng.random() < 0.2:
                lesions.append(draw_lesion(rng, "benign", params))
        elif status == "benign":
            for _ in range(1 if rng.random() < 0.75 else 2):
                lesions.append(draw_lesion(rng, "benign", params))
        mimics = draw_mimics(rng, params)
        anatomy = draw_anatomy(rng, density)
        for view in ("CC", "MLO"):
            image_id = f"{pid}_{side}_{view}"
            acq = Acquisition.draw(rng, params.domain)
            shown = [m for m in mimics if view in m["views"]]
            img, _, masks = render_image(params, view, density, lesions, rng, anatomy, mimics=shown, acquisition=acq)
            row = {"image_id": image_id, "patient_id": pid, "laterality": side, "view": view,
                   "label": -1 if unlabeled else int(any(l["pathology"] == "malignant" for l in lesions)),
                   "path": f"images/{image_id}.png", "density": density,
                   "status": "unlabeled" if unlabeled else status,
                   "height": params.height, "width": params.width, **acq.record()}
            k = len(lesions)
            if unlabeled:
                yield SynthView(row, img, [], [], [], [])
            else:
                yield SynthView(row, img, lesions, masks[:k], shown, masks[k:])


def _mask_row(m: np.ndarray) -> dict:
    rows, cols = np.nonzero(m)
    return {"center_row": int(rows.mean()) if len(rows) else -1, "center_col": int(cols.mean()) if len(cols) else -1,
            "area_px": int(m.sum())}


def generate_patient(args: tuple[int, int, SynthParams, str, bool]) -> tuple[list[dict], list[dict], list[dict]]:
    """Render and write all images of one patient; returns (image rows, lesion rows, mimic rows)."""
    index, seed, params, out, unlabeled = args
    out = Path(out)
    images, lesion_rows, mimic_rows = [], [], []
    for v in generate_images(index, seed, params, unlabeled):
        row = v.row
        image_id = row["image_id"]
        write_png16(out / row["path"], v.image)
        for k, (les, m) in enumerate(zip(v.lesions, v.masks)):
            mask_path = f"masks/{image_id}_{k}.png"
            write_mask(out / mask_path, m)
            lesion_rows.append({
                "image_id": image_id, "lesion_id": f"{row['patient_id']}_{row['laterality']}_{k}",
                "kind": les["kind"], "pathology": les["pathology"], "mask_path": mask_path, "shape": les["shape"],
                "contrast": round(les["contrast"], 5), **_mask_row(m)})
        for mim, m in zip(v.mimics, v.mimic_masks):
            mask_path = f"masks/{image_id}_{mim['kind']}.png"
            write_mask(out / mask_path, m)
            mimic_rows.append({"image_id": image_id, "mimic_id": f"{row['patient_id']}_{row['laterality']}_{mim['kind']}",
                               "kind": mim["kind"], "mask_path": mask_path, "contrast": round(mim["contrast"], 5),
                               **_mask_row(m)})
        images.append(row)
    return images, lesion_rows, mimic_rows


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
    """Generate a synthetic prepared dataset in ``out`` and return its path: ``patients`` labelled patients (split
    7:1:2 or as the profile says) and the profile's unlabelled pool (``unlabeled_patients``, split ``unlabeled``).

    ``overrides`` replace :class:`SynthParams` fields (``lesion_contrast``, ``unlabeled_patients``, ...).

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
    # the unlabelled pool follows the labelled patients in the same streams: the labelled set does not depend on it
    jobs = [(i, seed, params, str(out), i >= n) for i in range(n + params.unlabeled_patients)]
    workers = workers or min(os.cpu_count() or 1, 8)
    image_rows, lesion_rows, mimic_rows = [], [], []
    bar = tqdm(total=len(jobs), desc=f"synth {domain}", unit="patient", disable=not progress)
    with (mp.get_context("spawn" if os.name == "nt" else "fork").Pool(workers) if workers > 1 else
          contextlib.nullcontext()) as pool:
        results = pool.imap(generate_patient, jobs, chunksize=max(1, len(jobs) // (workers * 8))) if pool else \
            map(generate_patient, jobs)
        for imgs, les, mims in results:
            image_rows += imgs
            lesion_rows += les
            mimic_rows += mims
            bar.update()
    bar.close()
    images = pd.DataFrame(image_rows)
    lesions = pd.DataFrame(lesion_rows, columns=["image_id", "lesion_id", "kind", "pathology", "mask_path",
                                                 "shape", "contrast", "center_row", "center_col", "area_px"])
    write_csv(out / "mimics.csv", pd.DataFrame(mimic_rows, columns=MIMIC_COLUMNS))
    labelled = images[images.label >= 0]
    write_dataset(out, images, lesions, {
        "source": "synthetic", "generator_version": GENERATOR_VERSION,
        "domain": domain, "profile": prof.name, "seed": seed, "patients": n,
        "unlabeled_patients": params.unlabeled_patients, "parameters": params.record(),
        "counts": {"images": len(labelled), "malignant_images": int(labelled.label.sum()), "lesions": len(lesions),
                   "mimics": len(mimic_rows), "unlabeled_images": int((images.label < 0).sum())},
        "orientation": "breast on the left, chest wall at column 0",
    }, prof.data.split_ratios[domain], prof.data.cv_folds, seed)
    return out
