"""One DICOM file to a 16-bit array (paper section III): decoding, MONOCHROME1, laterality and view, orientation.

Any transfer syntax pydicom can decode is accepted (uncompressed, RLE natively; JPEG and JPEG 2000 through the
pylibjpeg plugins installed with the project). Every error names the file.

Orientation convention of the whole project: the breast on the left, the chest wall at column 0.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from .layout import DataError


class DicomError(DataError):
    """A DICOM file is missing, corrupt, truncated, or its pixel data cannot be decoded."""


@dataclass
class DicomImage:
    pixels: np.ndarray  # uint16, MONOCHROME2 (bright = dense), full 16-bit range when BitsStored < 16
    laterality: str | None  # "L" / "R"
    view: str | None  # "CC" / "MLO" / ...
    series_description: str
    transfer_syntax: str


def _tag(ds, *names) -> str | None:
    for n in names:
        v = getattr(ds, n, None)
        if v not in (None, ""):
            return str(v).strip()
    return None


def read_header(path: str | os.PathLike):
    """The dataset without pixel data (fast), or :class:`DicomError`."""
    import pydicom

    path = Path(path)
    if not path.is_file():
        raise DicomError(f"{path}: DICOM file not found")
    try:
        return pydicom.dcmread(path, stop_before_pixels=True)
    except Exception as e:  # pydicom raises InvalidDicomError, OSError, EOFError, ...
        raise DicomError(f"{path}: not a readable DICOM file ({type(e).__name__}: {e})") from e


def laterality_and_view(ds) -> tuple[str | None, str | None]:
    """(L/R, view) from ImageLaterality/Laterality and ViewPosition/PatientOrientation (CBIS uses the latter)."""
    lat = _tag(ds, "ImageLaterality", "Laterality")
    lat = {"LEFT": "L", "RIGHT": "R"}.get(lat.upper(), lat.upper()) if lat else None
    view = _tag(ds, "ViewPosition")
    if not view:
        po = getattr(ds, "PatientOrientation", None)
        if po:
            po = "".join(po) if not isinstance(po, str) else po
            view = "MLO" if "MLO" in po.upper() else ("CC" if "CC" in po.upper() else None)
    if view:
        view = view.upper().replace("-", "")
    return lat, view


def read_dicom(path: str | os.PathLike) -> DicomImage:
    """Decode one mammogram; MONOCHROME1 is inverted so that dense tissue is bright, values span 16 bits."""
    import pydicom

    path = Path(path)
    if not path.is_file():
        raise DicomError(f"{path}: DICOM file not found")
    try:
        ds = pydicom.dcmread(path)
    except Exception as e:
        raise DicomError(f"{path}: not a readable DICOM file ({type(e).__name__}: {e})") from e
    ts = str(getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", "unknown"))
    if "PixelData" not in ds:
        raise DicomError(f"{path}: no pixel data")
    try:
        arr = ds.pixel_array
    except (NotImplementedError, RuntimeError) as e:
        raise DicomError(f"{path}: cannot decode transfer syntax {ts} ({e})") from e
    except Exception as e:  # truncated or corrupt pixel data
        raise DicomError(f"{path}: corrupt or truncated pixel data ({type(e).__name__}: {e})") from e
    if arr.ndim != 2:
        raise DicomError(f"{path}: expected one grayscale frame, got pixel array of shape {arr.shape}")
    bits = int(getattr(ds, "BitsStored", 16) or 16)
    top = (1 << bits) - 1
    arr = arr.astype(np.int64)
    if int(getattr(ds, "PixelRepresentation", 0)) == 1:  # signed: shift to unsigned
        arr = arr + (1 << (bits - 1))
    arr = np.clip(arr, 0, top)
    if str(getattr(ds, "PhotometricInterpretation", "MONOCHROME2")).strip() == "MONOCHROME1":
        arr = top - arr
    if bits < 16:
        arr = np.round(arr * (65535.0 / top))
    lat, view = laterality_and_view(ds)
    return DicomImage(arr.astype(np.uint16), lat, view, _tag(ds, "SeriesDescription") or "", ts)


def is_binary_mask(arr: np.ndarray) -> bool:
    """True for a ROI mask (at most two distinct values, one of them 0) rather than a grayscale crop."""
    vals = np.unique(arr[:: max(1, arr.shape[0] // 512), :: max(1, arr.shape[1] // 512)])
    return len(vals) <= 2 and vals.min() == 0


def needs_flip(img: np.ndarray) -> bool:
    """True if the breast sits on the right (its tissue centroid is right of the middle)."""
    x = img[:: max(1, img.shape[0] // 256), :: max(1, img.shape[1] // 256)].astype(np.float32)
    fg = x > max(0.1 * float(x.max()), float(np.percentile(x, 50)))
    cols = fg.sum(0)
    if cols.sum() == 0:
        return False
    return float((cols * np.arange(len(cols))).sum() / cols.sum()) > (len(cols) - 1) / 2


def resize16(img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Antialiased bilinear resize of a uint16 image in 32-bit float (PIL mode "F"), back to uint16 (no 8-bit
    step). PIL rather than torch: converters run in forked worker processes."""
    out = Image.fromarray(img.astype(np.float32), mode="F").resize((size[1], size[0]), Image.Resampling.BILINEAR)
    return np.clip(np.round(np.asarray(out)), 0, 65535).astype(np.uint16)


def resize_mask(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize a boolean mask: a pixel is lesion if at least half of its area is (box filter)."""
    out = Image.fromarray(mask.astype(np.float32), mode="F").resize((size[1], size[0]), Image.Resampling.BOX)
    return np.asarray(out) >= 0.5


def find_dicoms(root: str | os.PathLike, subject_pattern: str) -> dict[str, list[Path]]:
    """Every ``.dcm`` under ``root`` grouped by the first path component that matches ``subject_pattern``.

    That component is the subject folder in current NBIA downloads (``CBIS-DDSM/<Subject>/<date>-.../1-1.dcm``),
    in older ones (``<Subject>/<StudyUID>/<SeriesUID>/000000.dcm``) and in the paths of the CBIS-DDSM CSVs.
    """
    rx = re.compile(subject_pattern)
    out: dict[str, list[Path]] = {}
    for dirpath, _, files in os.walk(root):
        parts = Path(dirpath).relative_to(root).parts
        subject = next((p for p in parts if rx.fullmatch(p)), None)
        if subject is None:
            continue
        for f in files:
            if f.lower().endswith(".dcm"):
                out.setdefault(subject, []).append(Path(dirpath) / f)
    for v in out.values():
        v.sort()
    return out
