"""CMMD (TCIA) -> prepared dataset (paper section III.B and VI).

Reads ``CMMD_clinicaldata_revision.xlsx`` and the NBIA tree ``CMMD/D1-0001/<study>/<series>/1-1.dcm``; writes
images downsized to 1147x957 (paper profile) as 16-bit PNG, with labels (benign / malignant) from the clinical
table matched by patient and by each image's own laterality tag.

The table names one breast for most patients although the download often holds both: the paper's 3728 images
of 1775 patients are the images of the named breasts, so images of an unnamed breast are left out by default
(``keep_unlabeled=True`` keeps them with ``label = -1`` and ``split = "unlabeled"``, for SSL pretraining).
Splits: 3:1:1 at the patient level, stratified, and 5-fold cross-validation (``folds.csv``).
CMMD has no ROI annotation, so ``lesions.csv`` is empty.
"""
from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from ..paper import COUNTS
from ..config import Profile, image_size, resolve
from .convert import Converter, convert_all
from .dicom import DicomError, find_dicoms, laterality_and_view, read_header
from .layout import LESION_COLUMNS, DataError, write_dataset

CONVERTER_VERSION = "1.0"
SUBJECT = r"D\d-\d{4}"


def read_clinical(path: str | os.PathLike) -> pd.DataFrame:
    """The CMMD clinical table: one row per (patient, breast) with ``label`` 1 for Malignant."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: CMMD clinical table not found")
    try:
        t = pd.read_excel(path)
    except Exception as e:
        raise DataError(f"{path}: unreadable spreadsheet ({e})") from e
    t.columns = [str(c).strip() for c in t.columns]
    missing = [c for c in ("ID1", "LeftRight", "classification") if c not in t.columns]
    if missing:
        raise DataError(f"{path}: not the CMMD clinical table; missing column(s) {missing}")
    t["ID1"] = t.ID1.astype(str).str.strip()
    t["LeftRight"] = t.LeftRight.astype(str).str.strip().str.upper().str[0]
    cls = t.classification.astype(str).str.strip().str.lower()
    bad = set(cls) - {"malignant", "benign"}
    if bad:
        raise DataError(f"{path}: unknown classification value(s) {sorted(bad)}")
    t["label"] = (cls == "malignant").astype(int)
    return t


def prepare_cmmd(dicom_root: str | os.PathLike, clinical: str | os.PathLike, out: str | os.PathLike,
                 profile: str | Profile = "paper", seed: int = 0, keep_unlabeled: bool = False,
                 workers: int | None = None) -> dict:
    """Convert a CMMD download into a prepared dataset in ``out``; returns the summary (also in dataset.json)."""
    prof = resolve(profile)
    root, out = Path(dicom_root), Path(out)
    if not root.is_dir():
        raise DataError(f"{root}: --dicom-root is not a directory")
    table = read_clinical(clinical)
    index = find_dicoms(root, SUBJECT)
    if not index:
        raise DataError(f"{root}: no CMMD patient folder (like D1-0001) under --dicom-root")
    labels = table.set_index(["ID1", "LeftRight"]).label.to_dict()
    size = image_size(prof, "cmmd")
    rows, failures, jobs = [], [], []
    for pid, files in sorted(index.items()):
        seen: dict[str, int] = {}
        for f in files:
            try:
                lat, view = laterality_and_view(read_header(f))
            except DicomError as e:
                failures.append({"image_id": "", "file": str(f), "status": "failed", "reason": str(e)})
                continue
            if lat not in ("L", "R"):
                failures.append({"image_id": "", "file": str(f), "status": "failed",
                                 "reason": f"{f}: no laterality tag (ImageLaterality/Laterality)"})
                continue
            label = labels.get((pid, lat))
            if label is None and not keep_unlabeled:
                continue
            base = f"{pid}_{lat}_{view or 'NA'}"
            k = seen.get(base, 0)
            seen[base] = k + 1
            iid = base if k == 0 else f"{base}_{k}"
            rows.append({"image_id": iid, "patient_id": pid, "laterality": lat, "view": view or "",
                         "label": -1 if label is None else int(label), "path": f"images/{iid}.png",
                         "dicom": str(f)})
            jobs.append({"image_id": iid, "full": [f], "lesions": [], "out": str(out), "size": size})
    report, counts, ok = convert_all(jobs, out, workers, "CMMD", failures)
    images = pd.DataFrame(rows)
    images = images[images.image_id.isin(ok)].reset_index(drop=True)
    labelled = images[images.label >= 0].copy()
    if labelled.patient_id.nunique() < 5:
        raise DataError(f"{out}: only {labelled.patient_id.nunique()} labelled patient(s) converted; "
                        f"see {out / 'report.csv'}")
    named = table[table.ID1.isin(index)]
    summary = {
        "source": "CMMD", "converter_version": CONVERTER_VERSION,
        "domain": "cmmd", "profile": prof.name, "seed": seed, "image_size": list(size), "dicom_root": str(root),
        "clinical": str(clinical), "keep_unlabeled": keep_unlabeled,
        "counts": {"images": int((images.label >= 0).sum()), "patients": int(labelled.patient_id.nunique()),
                   "malignant_images": int((images.label == 1).sum()), "unlabeled_images": int((images.label < 0).sum()),
                   "breasts_named_in_table": len(named)},
        "paper_counts": COUNTS["CMMD"],
        "difference_note": (
            "Labels exist for the breasts the clinical table names (1872 breasts of 1775 patients, 2 images each in "
            "the table's 'number' column: 3744 images); the paper reports 3728. Images of breasts the table does not "
            "name have no label and are left out unless keep_unlabeled is set."),
        "orientation": "breast on the left, chest wall at column 0 (images with the breast on the right are flipped)",
        **counts,
    }
    return write_dataset(out, images, pd.DataFrame(columns=LESION_COLUMNS), summary, prof.data.split_ratios["cmmd"],
                         prof.data.cv_folds, seed)


def _arguments(q) -> None:
    q.add_argument("--dicom-root", required=True, help="folder of the NBIA download (holds CMMD/D1-0001/...)")
    q.add_argument("--clinical", required=True, help="CMMD_clinicaldata_revision.xlsx")
    q.add_argument("--keep-unlabeled", action="store_true",
                   help="keep images of breasts the table does not name, unlabelled, for SSL pretraining")


CONVERTER = Converter(
    "cmmd", "CMMD: clinical xlsx + NBIA DICOM tree",
    "Convert CMMD (paper III.B): images resized to the profile's size as 16-bit PNG, labels from the clinical table "
    "by patient and the image's laterality, 3:1:1 split, 5 folds.", _arguments,
    lambda a: prepare_cmmd(a.dicom_root, a.clinical, a.out, a.profile, a.seed, a.keep_unlabeled, a.workers))
