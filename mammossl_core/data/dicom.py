"""One DICOM file to a 16-bit array (paper section III): decoding, modality and VOI LUTs, MONOCHROME1, laterality
and view, orientation.

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
    patient_id: str = ""  # PatientID, "" when absent


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


#: modalities read as mammograms (others are refused with the file's modality named)
MAMMO_MODALITIES = ("MG",)


def _stored_range(ds) -> tuple[float, float]:
    bits = int(getattr(ds, "BitsStored", 16) or 16)
    if int(getattr(ds, "PixelRepresentation", 0) or 0) == 1:
        return -(2.0 ** (bits - 1)), 2.0 ** (bits - 1) - 1
    return 0.0, 2.0**bits - 1


def _modality_range(ds) -> tuple[float, float]:
    """The range of values after the modality LUT stage (DICOM PS3.3 C.11.1; the range pydicom's windowing assumes)."""
    if ds.get("ModalityLUTSequence"):
        return 0.0, 2.0 ** int(ds.ModalityLUTSequence[0].LUTDescriptor[2]) - 1
    lo, hi = _stored_range(ds)
    slope, intercept = ds.get("RescaleSlope"), ds.get("RescaleIntercept")
    if slope is not None and intercept is not None:
        a, b = lo * float(slope) + float(intercept), hi * float(slope) + float(intercept)
        return min(a, b), max(a, b)
    return lo, hi


def _has_voi(ds) -> str | None:
    """"lut" (a VOI LUT sequence, preferred as pydicom does), "window" (window centre/width), or None."""
    seq = ds.get("VOILUTSequence")
    if seq and seq[0].get("LUTDescriptor") is not None and seq[0].get("LUTData") is not None:
        return "lut"
    if ds.get("WindowCenter") is not None and ds.get("WindowWidth") is not None:
        return "window"
    return None


def display_pixels(arr: np.ndarray, ds, raw: bool = False) -> tuple[np.ndarray, str]:
    """Stored pixel values to a 16-bit image in which dense tissue is bright, and a note of the steps taken.

    Unless ``raw``: the modality LUT (rescale slope/intercept or a modality LUT sequence), then the VOI transform
    where the file has one (window centre/width with its VOI LUT function LINEAR, LINEAR_EXACT or SIGMOID, or a
    VOI LUT sequence), both with pydicom's own functions. The values then span the stage's output range (PS3.3
    C.11), which is mapped linearly onto 0..65535; MONOCHROME1 is inverted last, after the LUTs. ``raw`` keeps the
    stored values (only the inversion and the 16-bit scaling). Files without LUTs, such as CBIS-DDSM's and CMMD's,
    give the same image either way."""
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    steps = []
    v = arr  # integer values until a stage makes them float (a VOI LUT sequence indexes by them)
    lo, hi = _stored_range(ds)
    if not raw:
        if ds.get("ModalityLUTSequence") or ds.get("RescaleSlope") is not None:
            v = apply_modality_lut(arr, ds)
            lo, hi = _modality_range(ds)
            steps.append("modality LUT")
        voi = _has_voi(ds)
        if voi is not None:
            v = apply_voi_lut(v, ds, index=0, prefer_lut=True)
            if voi == "lut":
                lo, hi = 0.0, 2.0 ** int(ds.VOILUTSequence[0].LUTDescriptor[2]) - 1
                steps.append("VOI LUT sequence")
            else:
                lo, hi = _modality_range(ds)
                steps.append(f"window {str(getattr(ds, 'VOILUTFunction', 'LINEAR')).upper()}")
    v = np.clip(np.asarray(v, dtype=np.float64), lo, hi)
    if str(getattr(ds, "PhotometricInterpretation", "MONOCHROME2")).strip() == "MONOCHROME1":
        v = lo + hi - v
        steps.append("MONOCHROME1 inverted")
    out = np.round((v - lo) * (65535.0 / max(hi - lo, 1e-12)))
    return out.astype(np.uint16), ", ".join(steps)


def read_dicom(path: str | os.PathLike, raw: bool = False, allow_processing: bool = False,
               allow_multiframe: bool = False, check_modality: bool = True) -> DicomImage:
    """Decode one mammogram to 16 bits with dense tissue bright (:func:`display_pixels`).

    Refused with a :class:`DicomError` naming the file and the reason: no pixel data, undecodable or truncated
    pixel data, colour images, a modality other than mammography (``check_modality``; ROI masks are read with it
    off), "FOR PROCESSING" images (raw detector data, unless ``allow_processing``) and multi-frame files such as
    tomosynthesis (unless ``allow_multiframe``, which takes the central frame)."""
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
        raise DicomError(f"{path}: no pixel data (a structured report or presentation state?)")
    modality = str(getattr(ds, "Modality", "") or "").strip().upper()
    if check_modality and modality and modality not in MAMMO_MODALITIES:
        raise DicomError(f"{path}: modality {modality} is not mammography ({'/'.join(MAMMO_MODALITIES)}); "
                         f"not converted")
    if int(getattr(ds, "SamplesPerPixel", 1) or 1) != 1:
        raise DicomError(f"{path}: colour image ({getattr(ds, 'PhotometricInterpretation', '?')}, "
                         f"{ds.SamplesPerPixel} samples per pixel); a mammogram has one grayscale channel")
    intent = str(getattr(ds, "PresentationIntentType", "") or "").strip().upper()
    if intent == "FOR PROCESSING" and not allow_processing:
        raise DicomError(f"{path}: a FOR PROCESSING image (raw detector data, not meant for display); use the "
                         f"FOR PRESENTATION image of the study, or allow processing images explicitly")
    frames = int(getattr(ds, "NumberOfFrames", 1) or 1)
    if frames > 1 and not allow_multiframe:
        raise DicomError(f"{path}: {frames} frames (tomosynthesis or a multi-frame export); expected one 2-D "
                         f"mammogram, or allow multi-frame files to take the central frame")
    try:
        arr = ds.pixel_array
    except (NotImplementedError, RuntimeError) as e:
        raise DicomError(f"{path}: cannot decode transfer syntax {ts} ({e})") from e
    except Exception as e:  # truncated or corrupt pixel data
        raise DicomError(f"{path}: corrupt or truncated pixel data ({type(e).__name__}: {e})") from e
    if frames > 1:
        arr = arr[frames // 2]
    if arr.ndim != 2:
        raise DicomError(f"{path}: expected one grayscale frame, got pixel array of shape {arr.shape}")
    try:
        pixels, _ = display_pixels(arr, ds, raw)
    except (ValueError, AttributeError, IndexError, TypeError) as e:  # a malformed LUT or window
        raise DicomError(f"{path}: cannot apply its modality/VOI LUT ({type(e).__name__}: {e}); "
                         f"read it raw to keep the stored values") from e
    lat, view = laterality_and_view(ds)
    return DicomImage(pixels, lat, view, _tag(ds, "SeriesDescription") or "", ts, _tag(ds, "PatientID") or "")


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
