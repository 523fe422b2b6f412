"""CBIS-DDSM (TCIA) -> prepared dataset (paper section III.A).

Reads the four case-description CSVs, finds each full mammogram and ROI mask in an NBIA download tree whatever
its folder naming, and writes whole images (1152x896 at the paper profile) as 16-bit PNG, lesion masks, the
tables and a patient-level stratified 7:1:2 split (not the CSVs' own train/test division).

Label of an image: 1 if any abnormality on it is MALIGNANT (BENIGN and BENIGN_WITHOUT_CALLBACK are benign).
Mass and calcification cases of the same breast and view are separate files in CBIS-DDSM and stay separate images.
"""
from __future__ import annotations

import csv
import os
import re
from pathlib import Path

import pandas as pd

from ..paper import COUNTS
from ..config import Profile, image_size, resolve
from .convert import Converter, convert_all
from .dicom import find_dicoms
from .layout import DataError, write_dataset

CONVERTER_VERSION = "1.0"
CSV_FILES = ("mass_case_description_train_set.csv", "mass_case_description_test_set.csv",
             "calc_case_description_train_set.csv", "calc_case_description_test_set.csv")
REQUIRED = ["patient_id", "breast_density", "left_or_right_breast", "image_view", "abnormality_id",
            "abnormality_type", "pathology", "image_file_path", "cropped_image_file_path", "roi_mask_file_path"]
SUBJECT = r"(Mass|Calc)-(Training|Test)_P_\d+_(LEFT|RIGHT)_(CC|MLO)(_\d+)?"
#: the paper's counts (III.A), for the report


def _norm(col: str) -> str:
    return re.sub(r"\s+", "_", col.strip().lower())


def read_description_csv(path: str | os.PathLike) -> pd.DataFrame:
    """One CBIS-DDSM description CSV with normalised column names (``breast density`` -> ``breast_density``) and
    every field stripped of stray whitespace and the newline TCIA leaves inside the last quoted field."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: CBIS-DDSM description CSV not found")
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    if not rows:
        raise DataError(f"{path}: empty CSV")
    header = [_norm(c) for c in rows[0]]
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise DataError(f"{path}: not a CBIS-DDSM description CSV; missing column(s) {missing}")
    df = pd.DataFrame([[v.strip() for v in r] for r in rows[1:] if any(v.strip() for v in r)], columns=header)
    df["source_csv"] = path.name
    return df


def _subject(p: str) -> str:
    return p.replace("\\", "/").strip().split("/")[0]


def prepare_cbis_ddsm(dicom_root: str | os.PathLike, csv_dir: str | os.PathLike, out: str | os.PathLike,
                      profile: str | Profile = "paper", seed: int = 0, workers: int | None = None) -> dict:
    """Convert a CBIS-DDSM download into a prepared dataset in ``out``; returns the summary (also in dataset.json).

    Raises :class:`DataError` at once for a wrong ``dicom_root`` or malformed CSVs; files that fail are reported in
    ``out/report.csv`` while the rest goes on (``summary["failed"] > 0``)."""
    prof = resolve(profile)
    root, csv_dir, out = Path(dicom_root), Path(csv_dir), Path(out)
    if not root.is_dir():
        raise DataError(f"{root}: --dicom-root is not a directory")
    missing = [f for f in CSV_FILES if not (csv_dir / f).is_file()]
    if missing:
        raise DataError(f"{csv_dir}: missing CBIS-DDSM description CSV(s) {missing}")
    desc = pd.concat([read_description_csv(csv_dir / f) for f in CSV_FILES], ignore_index=True)
    index = find_dicoms(root, SUBJECT)
    if not index:
        raise DataError(f"{root}: no CBIS-DDSM DICOM folder (like Mass-Training_P_00001_LEFT_CC) under --dicom-root")
    desc["image_id"] = desc.image_file_path.map(_subject)
    desc["pathology"] = desc.pathology.str.upper()
    bad = set(desc.pathology) - {"MALIGNANT", "BENIGN", "BENIGN_WITHOUT_CALLBACK"}
    if bad:
        raise DataError(f"{csv_dir}: unknown pathology value(s) {sorted(bad)}")
    size = image_size(prof, "ddsm")
    jobs, lesion_rows = [], []
    for image_id, g in desc.groupby("image_id", sort=True):
        lesions = []
        for _, r in g.iterrows():
            lesion_id = f"{image_id}_{r.abnormality_id}"
            roi_subjects = {_subject(r.roi_mask_file_path), _subject(r.cropped_image_file_path)}
            roi = sorted({p for s in roi_subjects for p in index.get(s, [])})
            mask_path = f"masks/{lesion_id}.png"
            lesions.append({"lesion_id": lesion_id, "roi": roi, "mask_path": mask_path})
            lesion_rows.append({
                "image_id": image_id, "lesion_id": lesion_id,
                "kind": "mass" if r.abnormality_type.lower().startswith("mass") else "calc",
                "pathology": "malignant" if r.pathology == "MALIGNANT" else "benign",
                "pathology_cbis": r.pathology, "mask_path": mask_path,
                "shape": r.get("mass_shape", "") or r.get("calc_type", ""),
                "margins_or_distribution": r.get("mass_margins", "") or r.get("calc_distribution", ""),
                "assessment": r.assessment, "subtlety": r.subtlety, "breast_density": r.breast_density})
        jobs.append({"image_id": image_id, "full": index.get(image_id, []), "expected": g.image_file_path.iloc[0],
                     "lesions": lesions, "out": str(out), "size": size})
    report, counts, ok_images = convert_all(jobs, out, workers, "CBIS-DDSM")

    first = desc.groupby("image_id").first()
    images = pd.DataFrame({
        "image_id": first.index, "patient_id": first.patient_id.to_numpy(),
        "laterality": first.left_or_right_breast.str[0].to_numpy(), "view": first.image_view.to_numpy(),
        "label": desc.groupby("image_id").pathology.apply(lambda s: int((s == "MALIGNANT").any())).to_numpy(),
        "path": [f"images/{i}.png" for i in first.index], "breast_density": first.breast_density.to_numpy(),
        "cbis_set": first.source_csv.str.replace("_case_description_", " ").str.replace(".csv", "").to_numpy(),
    })
    dropped = sorted(set(images.image_id) - ok_images)
    images = images[images.image_id.isin(ok_images)].reset_index(drop=True)
    ok_lesions = set(report[report.lesion_id.notna() & (report.status == "written")].lesion_id) | set(
        l["lesion_id"] for j in jobs if j["image_id"] in set(report[report.status == "skipped"].image_id)
        for l in j["lesions"])
    lesions = pd.DataFrame(lesion_rows)
    lesions = lesions[lesions.lesion_id.isin(ok_lesions) & lesions.image_id.isin(ok_images)].reset_index(drop=True)
    if len(images) < 10:
        raise DataError(f"{out}: only {len(images)} image(s) converted; see {out / 'report.csv'}")
    summary = {
        "source": "CBIS-DDSM", "converter_version": CONVERTER_VERSION,
        "domain": "ddsm", "profile": prof.name, "seed": seed, "image_size": list(size),
        "dicom_root": str(root), "csv_dir": str(csv_dir),
        "counts": {"images": len(images), "patients": int(images.patient_id.nunique()),
                   "malignant_images": int(images.label.sum()),
                   "malignant_patients": int(images.groupby("patient_id").label.max().sum()),
                   "lesions": len(lesions), "csv_images": int(desc.image_id.nunique()), "dropped_images": len(dropped)},
        "paper_counts": COUNTS["CBIS-DDSM"],
        "difference_note": (
            "The four TCIA CSVs list 3103 full-mammogram files of 1566 patients (mass and calcification cases of the "
            "same breast and view are separate files); the paper reports 3119 images. Images whose DICOM failed "
            "are listed in report.csv and left out."),
        "orientation": "breast on the left, chest wall at column 0 (images with the breast on the right are flipped)",
        **counts,
    }
    return write_dataset(out, images, lesions, summary, prof.data.split_ratios["ddsm"], prof.data.cv_folds, seed)


def _arguments(q) -> None:
    q.add_argument("--dicom-root", required=True, help="folder of the NBIA download (holds CBIS-DDSM/...)")
    q.add_argument("--csv-dir", required=True, help="folder with the four *_case_description_*_set.csv files")


CONVERTER = Converter(
    "cbis-ddsm", "CBIS-DDSM: four description CSVs + NBIA DICOM tree",
    "Convert CBIS-DDSM (paper III.A): whole images resized to the profile's size as 16-bit PNG, ROI masks, label 1 "
    "if any abnormality is MALIGNANT, patient-level 7:1:2 split.", _arguments,
    lambda a: prepare_cbis_ddsm(a.dicom_root, a.csv_dir, a.out, a.profile, a.seed, a.workers))
