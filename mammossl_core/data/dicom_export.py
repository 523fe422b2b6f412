"""A prepared dataset's images written as mammography DICOM files in a TCIA-like folder tree
(``mammossl synth --format dicom``), so that the DICOM folder converter and ``mammossl predict`` are exercised end
to end on files that nobody typed by hand.

Each image becomes ``<root>/<patient>/<study>/<series>/1-1.dcm``: Modality MG, FOR PRESENTATION, 16 bits stored,
ImageLaterality and ViewPosition, a VOI window (LINEAR_EXACT, centre 32768, width 65536: the identity up to a
rounding of at most one grey level) and, for every other patient, MONOCHROME1 (stored values inverted). Right
breasts are mirrored to the right side of the image, as a detector shows them, so the converter's orientation step
has work to do. ``labels.csv`` (patient_id, laterality, label: the breast's worst finding) sits beside the tree.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from .layout import PreparedDataset, read_png16


def _dataset(pixels: np.ndarray, row, photometric: str, study_uid: str):
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    sop_class = "1.2.840.10008.5.1.4.1.1.1.2"  # Digital Mammography X-Ray Image Storage - For Presentation
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset("", {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID = sop_class, meta.MediaStorageSOPInstanceUID
    ds.Modality, ds.PresentationIntentType = "MG", "FOR PRESENTATION"
    ds.PatientID = ds.PatientName = str(row.patient_id)
    ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uid, generate_uid()
    ds.ImageLaterality, ds.ViewPosition = row.laterality, row.view
    ds.SeriesDescription = f"{row.laterality} {row.view}"
    ds.BodyPartExamined = "BREAST"
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, photometric
    ds.Rows, ds.Columns = pixels.shape
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.WindowCenter, ds.WindowWidth, ds.VOILUTFunction = 32768, 65536, "LINEAR_EXACT"
    ds.PixelData = pixels.astype(np.uint16).tobytes()
    return ds


def write_dicom_tree(dataset: str | os.PathLike, root: str | os.PathLike, patients: int | None = None) -> Path:
    """Write the images of the prepared ``dataset`` (of its first ``patients`` patients, or all) under ``root`` (see
    the module docstring); returns ``root``."""
    from pydicom.uid import generate_uid

    ds = PreparedDataset(dataset)
    root = Path(root)
    studies: dict[str, str] = {}
    keep = sorted(ds.images.patient_id.unique())[:patients] if patients else None
    images = ds.images if keep is None else ds.images[ds.images.patient_id.isin(keep)]
    for k, row in enumerate(images.itertuples()):
        img = read_png16(ds.root / row.path)
        if row.laterality == "R":
            img = img[:, ::-1]
        mono1 = sorted(images.patient_id.unique()).index(row.patient_id) % 2 == 1
        stored = 65535 - img if mono1 else img
        study = studies.setdefault(row.patient_id, generate_uid())
        d = _dataset(np.ascontiguousarray(stored), row, "MONOCHROME1" if mono1 else "MONOCHROME2", study)
        path = root / str(row.patient_id) / f"{study[-12:]}" / f"{k + 1}.000000-{row.laterality}{row.view}" / "1-1.dcm"
        path.parent.mkdir(parents=True, exist_ok=True)
        d.save_as(path, enforce_file_format=True)
    labels = images[images.label >= 0].groupby(["patient_id", "laterality"]).label.max().reset_index()
    pd.DataFrame(labels).to_csv(root / "labels.csv", index=False)
    return root
