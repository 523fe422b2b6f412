"""Any folder of mammography DICOMs (a hospital export, a partial TCIA download) to a prepared dataset.

``mammossl prepare folder --dicom-root DIR --out DIR [--labels CSV]``: every DICOM file under the root (``.dcm``,
``.dicom`` or no extension) is read for its patient, laterality and view; mammograms are converted with the display
pipeline of :func:`~mammossl_core.data.dicom.read_dicom` (LUTs, MONOCHROME1, 16 bits), oriented with the breast on
the left and resized to the profile's image size, in parallel and resumably, like the CBIS-DDSM and CMMD
converters; every file that is not converted is listed in ``report.csv`` with its reason.

Labels are optional: a CSV with ``patient_id``, ``laterality`` (L/R) and ``label`` (1 malignant, 0 not) labels
breasts. Labelled patients are split patient-level when there are enough of them for the profile's ratios;
otherwise (and without labels) every image is ``unlabeled``: the dataset serves pretraining and prediction, and
evaluation refuses it with a clear error.
"""
from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from ..config import Profile, image_size, resolve
from .convert import Converter, convert_all
from .dicom import MAMMO_MODALITIES, DicomError, laterality_and_view, read_header
from .layout import LESION_COLUMNS, DataError, write_dataset

CONVERTER_VERSION = "1.0"


def dicom_files(root: Path) -> list[Path]:
    """Candidate DICOM files under ``root``: ``*.dcm``, ``*.dicom`` and extension-less files (hospital exports),
    without DICOMDIR index files."""
    return sorted(p for p in root.rglob("*") if p.is_file() and p.name.upper() != "DICOMDIR"
                  and (p.suffix.lower() in (".dcm", ".dicom") or p.suffix == ""))


def read_labels(path: str | os.PathLike) -> dict[tuple[str, str], int]:
    """``{(patient_id, laterality): label}`` from a CSV with columns patient_id, laterality, label."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: labels file not found")
    df = pd.read_csv(path, dtype={"patient_id": str, "laterality": str})
    missing = {"patient_id", "laterality", "label"} - set(df.columns)
    if missing:
        raise DataError(f"{path}: missing column(s) {sorted(missing)}; expected patient_id, laterality (L/R), label")
    bad = df[~df.label.isin([0, 1]) | ~df.laterality.str.upper().isin(["L", "R"])]
    if len(bad):
        raise DataError(f"{path}: row {int(bad.index[0]) + 2}: label must be 0 or 1 and laterality L or R")
    return {(str(r.patient_id).strip(), r.laterality.upper()): int(r.label) for r in df.itertuples()}


def prepare_folder(dicom_root: str | os.PathLike, out: str | os.PathLike, profile: str | Profile = "paper",
                   labels: str | os.PathLike | None = None, seed: int = 0, workers: int | None = None,
                   domain: str = "cmmd", raw: bool = False, allow_processing: bool = False,
                   allow_multiframe: bool = False) -> dict:
    """Convert the mammograms under ``dicom_root`` into a prepared dataset in ``out``; returns ``dataset.json``.

    ``domain`` names the image size of the profile to use (``cmmd``: digital mammograms, the default; ``ddsm``:
    scanned film). ``raw``, ``allow_processing`` and ``allow_multiframe`` are passed to
    :func:`~mammossl_core.data.dicom.read_dicom`."""
    prof = resolve(profile)
    root, out = Path(dicom_root), Path(out)
    if not root.is_dir():
        raise DataError(f"{root}: --dicom-root is not a directory")
    label_of = read_labels(labels) if labels else {}
    size = image_size(prof, domain)
    read = {"raw": raw, "allow_processing": allow_processing, "allow_multiframe": allow_multiframe}
    rows, failures, jobs, seen = [], [], [], {}
    for f in dicom_files(root):
        try:
            ds = read_header(f)
        except DicomError as e:
            failures.append({"image_id": "", "file": str(f), "status": "failed", "reason": str(e)})
            continue
        modality = str(getattr(ds, "Modality", "") or "").upper()
        if modality and modality not in MAMMO_MODALITIES:
            failures.append({"image_id": "", "file": str(f), "status": "failed",
                             "reason": f"{f}: modality {modality} is not mammography; not converted"})
            continue
        lat, view = laterality_and_view(ds)
        if lat not in ("L", "R"):
            failures.append({"image_id": "", "file": str(f), "status": "failed",
                             "reason": f"{f}: no laterality tag (ImageLaterality/Laterality)"})
            continue
        pid = str(getattr(ds, "PatientID", "") or "").strip() or f.relative_to(root).parts[0]
        base = f"{pid}_{lat}_{view or 'NA'}"
        k = seen.get(base, 0)
        seen[base] = k + 1
        iid = base if k == 0 else f"{base}_{k}"
        label = label_of.get((pid, lat), -1)
        rows.append({"image_id": iid, "patient_id": pid, "laterality": lat, "view": view or "", "label": label,
                     "path": f"images/{iid}.png", "dicom": str(f)})
        jobs.append({"image_id": iid, "full": [f], "lesions": [], "out": str(out), "size": size, "read": read})
    if not jobs:
        raise DataError(f"{root}: no mammography DICOM file with a laterality tag"
                        + (f" ({len(failures)} file(s) refused; first: {failures[0]['reason']})" if failures else ""))
    out.mkdir(parents=True, exist_ok=True)
    _, counts, ok = convert_all(jobs, out, workers, "DICOM folder", failures)
    images = pd.DataFrame(rows)
    images = images[images.image_id.isin(ok)].reset_index(drop=True)
    if images.empty:
        raise DataError(f"{out}: no image could be converted; see {out / 'report.csv'}")
    ratios = prof.data.split_ratios.get(domain, (3, 1, 1))
    labelled = images[images.label >= 0]
    enough = labelled.patient_id.nunique() >= max(sum(ratios), prof.data.cv_folds) and labelled.label.nunique() == 2
    note = ("labelled patients split patient-level" if enough else
            "no split: " + ("no labels given" if not label_of else
                            f"{labelled.patient_id.nunique()} labelled patient(s) are too few for a {ratios} split")
            + "; every image is 'unlabeled' (pretraining and prediction only)")
    summary = {"source": "DICOM folder", "converter_version": CONVERTER_VERSION, "domain": domain,
               "profile": prof.name, "seed": seed, "image_size": list(size), "dicom_root": str(root),
               "labels": str(labels) if labels else None, "read": read, "split_note": note,
               "counts": {"images": int(len(images)), "patients": int(images.patient_id.nunique()),
                          "labelled_images": int((images.label >= 0).sum()),
                          "malignant_images": int((images.label == 1).sum())},
               "orientation": "breast on the left, chest wall at column 0 (images with the breast on the right are "
                              "flipped)", **counts}
    return write_dataset(out, images, pd.DataFrame(columns=LESION_COLUMNS), summary, ratios, prof.data.cv_folds,
                         seed, split=enough)


def _arguments(q) -> None:
    q.add_argument("--dicom-root", required=True, help="folder holding the DICOM files (any depth)")
    q.add_argument("--labels", default=None, help="CSV with patient_id, laterality (L/R), label (0/1) per breast")
    q.add_argument("--domain", choices=["cmmd", "ddsm"], default="cmmd",
                   help="image size of the profile to use: cmmd (digital, default) or ddsm (film)")
    q.add_argument("--raw", action="store_true", help="keep the stored values (no modality/VOI LUT)")
    q.add_argument("--allow-processing", action="store_true", help="also convert FOR PROCESSING images")
    q.add_argument("--allow-multiframe", action="store_true",
                   help="convert multi-frame files (tomosynthesis) by their central frame")


def _run(a) -> dict:
    s = prepare_folder(a.dicom_root, a.out, a.profile, a.labels, a.seed, a.workers, a.domain, a.raw,
                       a.allow_processing, a.allow_multiframe)
    print(s["split_note"])
    return s


CONVERTER = Converter(
    "folder", "any folder of mammography DICOMs (a hospital export); labels optional",
    "Convert every mammography DICOM under --dicom-root (patient, laterality and view from the headers; modality and "
    "VOI LUTs applied, MONOCHROME1 inverted, 16 bits kept) into a prepared dataset. Without --labels (or with too "
    "few labelled patients to split) every image is 'unlabeled': pretraining and prediction only.", _arguments, _run)
