"""Small fake NBIA downloads in TCIA's real formats, built from slices of the real metadata files in
``../shared/realfmt`` (or ``$MAMMOSSL_REALFMT``): the CBIS-DDSM description CSVs (rows copied verbatim, quoted
newlines included) and the CMMD clinical table, with small DICOM files that carry the tags of the real CBIS-DDSM
header (dicom_header_full_mammogram.txt)."""
from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np
import pandas as pd

REALFMT = Path(os.environ.get("MAMMOSSL_REALFMT", Path(__file__).resolve().parents[2] / "shared" / "realfmt"))
CBIS_FILES = ("mass_case_description_train_set.csv", "mass_case_description_test_set.csv",
              "calc_case_description_train_set.csv", "calc_case_description_test_set.csv")
FULL_SIZE = (200, 150)


def write_dicom(path: Path, pixels: np.ndarray, *, subject: str, series: str, laterality: str | None = None,
                view: str | None = None, photometric: str = "MONOCHROME2", rle: bool = False, bits: int = 16,
                cmmd: bool = False, study_uid: str | None = None, series_uid: str | None = None) -> Path:
    """Write one DICOM with the tags of a real CBIS-DDSM (or CMMD) file."""
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, RLELossless, generate_uid

    sop_class = "1.2.840.10008.5.1.4.1.1.1.2" if cmmd else "1.2.840.10008.5.1.4.1.1.7"
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyDate = "20161004"
    ds.Modality = "MG"
    ds.ConversionType = "WSD"
    ds.SeriesDescription = series
    ds.PatientName = subject
    ds.PatientID = subject
    ds.BodyPartExamined = "BREAST"
    ds.StudyInstanceUID = study_uid or generate_uid()
    ds.SeriesInstanceUID = series_uid or generate_uid()
    ds.StudyID = "DDSM"
    ds.SeriesNumber = 1
    ds.InstanceNumber = 1
    if cmmd:
        ds.ImageLaterality = laterality
        ds.ViewPosition = view
    else:
        ds.PatientOrientation = view or ""
        if laterality:
            ds.Laterality = laterality
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.Rows, ds.Columns = pixels.shape
    ds.BitsAllocated = 16 if bits > 8 else 8
    ds.BitsStored = bits
    ds.HighBit = bits - 1
    ds.PixelRepresentation = 0
    arr = pixels.astype(np.uint16 if bits > 8 else np.uint8)
    ds.PixelData = arr.tobytes()
    if rle:
        ds.compress(RLELossless, arr)
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


def _mammogram(rng, breast_right: bool, size=FULL_SIZE) -> np.ndarray:
    from mammossl_core.data.synthetic import SynthParams, render_image

    import dataclasses

    params = dataclasses.replace(SynthParams.of("paper"), height=size[0], width=size[1])
    img, _, _ = render_image(params, "CC", "b", [], rng)
    return img[:, ::-1].copy() if breast_right else img


def _lesion_mask(size, rng) -> np.ndarray:
    m = np.zeros(size, np.uint16)
    r, c = rng.integers(60, 140), rng.integers(20, 60)
    m[r - 8:r + 8, c - 8:c + 8] = 255
    return m


def cbis_fixture(root: Path, patients_per_file: int = 3, seed: int = 0) -> tuple[Path, Path, pd.DataFrame]:
    """CSV slices (verbatim rows of the real files) and a matching NBIA tree; returns (csv_dir, dicom_root, rows)."""
    rng = np.random.default_rng(seed)
    csv_dir, dicom_root = root / "csv", root / "nbia"
    csv_dir.mkdir(parents=True)
    all_rows = []
    for name in CBIS_FILES:
        with open(REALFMT / "cbis_ddsm" / name, newline="") as f:
            rows = list(csv.reader(f))
        header, body = rows[0], rows[1:]
        keep, patients = [], []
        for r in body:
            if r[0] not in patients:
                if len(patients) == patients_per_file:
                    continue
                patients.append(r[0])
            keep.append(r)
        with open(csv_dir / name, "w", newline="") as f:
            csv.writer(f).writerows([header] + keep)
        for r in keep:
            all_rows.append({"file": name, "patient": r[0], "side": r[2], "view": r[3], "pathology": r[9],
                             "full": r[11].strip(), "crop": r[12].strip(), "roi": r[13].strip()})
    table = pd.DataFrame(all_rows)
    for k, (full, g) in enumerate(table.groupby("full", sort=True)):
        subject = full.split("/")[0]
        right = g.side.iloc[0] == "RIGHT"
        img = _mammogram(rng, breast_right=right)
        mono1 = k % 4 == 1
        pixels = 65535 - img if mono1 else img
        old_layout = k % 3 == 2
        if old_layout:  # the paths written in the CSVs
            path = dicom_root / full
        else:  # current NBIA naming
            st, se = full.split("/")[1], full.split("/")[2]
            path = dicom_root / "CBIS-DDSM" / subject / f"10-04-2016-DDSM-{st[-5:]}" / \
                f"1.000000-full mammogram images-{se[-5:]}" / "1-1.dcm"
        write_dicom(path, pixels, subject=subject, series="full mammogram images", laterality=g.side.iloc[0][0],
                    view=g.view.iloc[0], photometric="MONOCHROME1" if mono1 else "MONOCHROME2", rle=k % 2 == 0)
        for j, (_, r) in enumerate(g.iterrows()):
            roi_subject = r.roi.split("/")[0]
            mask = _lesion_mask(FULL_SIZE, rng)
            if right:
                mask = mask[:, ::-1].copy()
            if k == 3 and j == 0:  # a mask of a different size than its mammogram
                from mammossl_core.data.dicom import resize_mask

                mask = (resize_mask(mask > 0, (220, 165)) * 255).astype(np.uint16)
            crop = img[40:90, 30:80].copy()
            base = dicom_root / "CBIS-DDSM" / roi_subject / "10-04-2016-DDSM-12345"
            swapped = k == 2  # the crop stored where the mask should be (as some CSV rows swap the paths)
            write_dicom(base / "1.000000-ROI mask images-11111" / ("1-2.dcm" if swapped else "1-1.dcm"), mask,
                        subject=roi_subject, series="ROI mask images")
            write_dicom(base / "1.000000-ROI mask images-11111" / ("1-1.dcm" if swapped else "1-2.dcm"), crop,
                        subject=roi_subject, series="cropped images")
    return csv_dir, dicom_root, table


def cmmd_fixture(root: Path, n_patients: int = 12, seed: int = 0) -> tuple[Path, Path, pd.DataFrame]:
    """A slice of the real clinical table (including a patient with both breasts named) and a tree with images of
    both breasts of every patient; returns (xlsx, dicom_root, table slice)."""
    rng = np.random.default_rng(seed)
    full = pd.read_excel(REALFMT / "cmmd" / "CMMD_clinicaldata_revision.xlsx")
    both = full[full.ID1.duplicated(keep=False)].ID1.iloc[0]
    single = full[~full.ID1.duplicated(keep=False)]
    half = (n_patients - 1) // 2
    ids = list(dict.fromkeys([both] + list(single[single.classification == "Benign"].ID1.iloc[:half]) +
                             list(single[single.classification == "Malignant"].ID1.iloc[:n_patients - 1 - half])))
    table = full[full.ID1.isin(ids)]
    xlsx = root / "CMMD_clinicaldata_revision.xlsx"
    root.mkdir(parents=True, exist_ok=True)
    table.to_excel(xlsx, index=False)
    dicom_root = root / "nbia"
    for k, pid in enumerate(ids):
        series = dicom_root / "CMMD" / pid / "07-18-2010-NA-NA-79377" / "1.000000-NA-70244"
        n = 0
        for lat in ("L", "R"):
            for view in ("CC", "MLO"):
                n += 1
                img = _mammogram(rng, breast_right=lat == "R", size=(160, 130))
                bits = 8 if k % 3 == 0 else 16
                px = (img >> 8) if bits == 8 else img
                write_dicom(series / f"1-{n}.dcm", px, subject=pid, series="NA", laterality=lat, view=view,
                            cmmd=True, bits=bits, rle=k % 2 == 1)
    return xlsx, dicom_root, table
