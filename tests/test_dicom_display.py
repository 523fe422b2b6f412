"""The DICOM display pipeline of ``read_dicom``: modality LUT, VOI (window LINEAR / LINEAR_EXACT / SIGMOID, VOI LUT
sequence), MONOCHROME1 after the LUTs, 16-bit output; the refusals. Expected values are computed here from the
formulas of DICOM PS3.3 C.11 (not with pydicom), on files the tests write and on pydicom-data's example files."""
import numpy as np
import pydicom
import pytest

from mammossl_core.data.dicom import DicomError, read_dicom
from nbia_fixtures import write_dicom


def _file(tmp_path, name, pixels, bits=12, photometric="MONOCHROME2", **tags):
    p = write_dicom(tmp_path / name, pixels, subject="S", series="full mammogram images", bits=bits,
                    photometric=photometric)
    if tags:
        ds = pydicom.dcmread(p)
        for k, v in tags.items():
            setattr(ds, k, v)
        ds.save_as(p, enforce_file_format=True)
    return p


@pytest.fixture
def stored():
    return np.random.default_rng(0).integers(0, 4096, size=(40, 30)).astype(np.uint16)


def _to16(y, lo, hi):
    return np.round((np.clip(y, lo, hi) - lo) * 65535.0 / (hi - lo)).astype(np.uint16)


def test_no_lut_is_the_stored_values_scaled(tmp_path, stored):
    p = _file(tmp_path, "plain.dcm", stored)
    assert np.array_equal(read_dicom(p).pixels, _to16(stored.astype(float), 0, 4095))
    assert np.array_equal(read_dicom(p).pixels, read_dicom(p, raw=True).pixels)  # CBIS-DDSM and CMMD files


def test_rescale_then_window_linear(tmp_path, stored):
    s, i, c, w = 2.0, -100.0, 3000.0, 2000.0
    p = _file(tmp_path, "lin.dcm", stored, RescaleSlope=s, RescaleIntercept=i, WindowCenter=c, WindowWidth=w)
    x = stored * s + i
    lo, hi = i, 4095 * s + i  # the modality stage's output range
    y = np.where(x <= c - 0.5 - (w - 1) / 2, lo, np.where(x > c - 0.5 + (w - 1) / 2, hi,
                                                         ((x - (c - 0.5)) / (w - 1) + 0.5) * (hi - lo) + lo))
    got = read_dicom(p).pixels
    assert np.abs(got.astype(int) - _to16(y, lo, hi).astype(int)).max() <= 1
    assert got.min() == 0 and got.max() == 65535  # the window saturates both ends
    raw = read_dicom(p, raw=True).pixels
    assert np.array_equal(raw, _to16(stored.astype(float), 0, 4095))


def test_window_linear_exact_and_sigmoid(tmp_path, stored):
    c, w = 2048.0, 1500.0
    x = stored.astype(float)
    for func, y in (("LINEAR_EXACT", np.clip(((x - c) / w + 0.5) * 4095, 0, 4095)),
                    ("SIGMOID", 4095 / (1 + np.exp(-4 * (x - c) / w)))):
        p = _file(tmp_path, f"{func}.dcm", stored, WindowCenter=c, WindowWidth=w, VOILUTFunction=func)
        got = read_dicom(p).pixels
        assert np.abs(got.astype(int) - _to16(y, 0, 4095).astype(int)).max() <= 1, func


def test_monochrome1_is_inverted_after_the_window(tmp_path, stored):
    c, w = 1000.0, 800.0
    p1 = _file(tmp_path, "m1.dcm", stored, photometric="MONOCHROME1", WindowCenter=c, WindowWidth=w,
               VOILUTFunction="LINEAR_EXACT")
    x = stored.astype(float)
    y = np.clip(((x - c) / w + 0.5) * 4095, 0, 4095)
    assert np.abs(read_dicom(p1).pixels.astype(int) - _to16(4095 - y, 0, 4095).astype(int)).max() <= 1


@pytest.mark.parametrize("name, sequence", [("vlut_04.dcm", "VOILUTSequence"),
                                            ("mlut_18.dcm", "ModalityLUTSequence")])
def test_lut_sequences_of_pydicom_data(name, sequence):
    """A LUT sequence maps each stored value x to LUTData[x - first mapped value] (clamped), in the LUT's bits."""
    pytest.importorskip("data_store", reason="pydicom-data (a dev dependency) holds the example files")
    path = pydicom.data.get_testdata_file(name)
    ds = pydicom.dcmread(path)
    assert "WindowCenter" not in ds or sequence == "VOILUTSequence"  # one LUT stage at a time
    item = ds[sequence][0]
    n, first, bits = item.LUTDescriptor
    lut = item.LUTData
    lut = np.frombuffer(lut, dtype=np.uint16) if isinstance(lut, bytes) else np.asarray(lut)
    x = ds.pixel_array.astype(float)
    y = lut[np.clip(x - first, 0, (n or 65536) - 1).astype(int)].astype(float)
    got = read_dicom(path, check_modality=False).pixels
    assert np.abs(got.astype(int) - _to16(y, 0, 2**bits - 1).astype(int)).max() <= 1


def test_monochrome1_jpeg2000_cr_of_pydicom_data():
    pytest.importorskip("data_store", reason="pydicom-data (a dev dependency) holds the example files")
    path = pydicom.data.get_testdata_file("RG1_J2KR.dcm")
    ds = pydicom.dcmread(path)
    assert ds.PhotometricInterpretation == "MONOCHROME1"
    raw = read_dicom(path, raw=True, check_modality=False).pixels
    bits = int(ds.BitsStored)
    assert np.array_equal(raw, _to16(2**bits - 1 - ds.pixel_array.astype(float), 0, 2**bits - 1))
    shown = read_dicom(path, check_modality=False).pixels  # its window (if any) then the inversion
    assert shown.dtype == np.uint16 and shown.max() > 30000


def test_refusals_name_the_file_and_the_reason(tmp_path, stored):
    cases = {
        "processing.dcm": (dict(PresentationIntentType="FOR PROCESSING"), "FOR PROCESSING"),
        "ct.dcm": (dict(Modality="CT"), "modality CT"),
    }
    for name, (tags, why) in cases.items():
        p = _file(tmp_path, name, stored, **tags)
        with pytest.raises(DicomError, match=why) as e:
            read_dicom(p)
        assert str(p) in str(e.value)
    assert read_dicom(tmp_path / "processing.dcm", allow_processing=True).pixels.shape == stored.shape
    # multi-frame: refused, or the central frame when allowed
    p = _file(tmp_path, "tomo.dcm", stored)
    ds = pydicom.dcmread(p)
    frames = np.stack([stored, 4095 - stored, stored // 2]).astype(np.uint16)
    ds.NumberOfFrames, ds.PixelData = 3, frames.tobytes()
    ds.save_as(p, enforce_file_format=True)
    with pytest.raises(DicomError, match="3 frames"):
        read_dicom(p)
    assert np.array_equal(read_dicom(p, allow_multiframe=True).pixels, _to16(4095.0 - stored, 0, 4095))
    # colour
    p = _file(tmp_path, "rgb.dcm", stored)
    ds = pydicom.dcmread(p)
    ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PlanarConfiguration = 3, "RGB", 0
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 8, 8, 7
    ds.PixelData = np.zeros((*stored.shape, 3), np.uint8).tobytes()
    ds.save_as(p, enforce_file_format=True)
    with pytest.raises(DicomError, match="colour image"):
        read_dicom(p)
    # pydicom's own CT slice
    with pytest.raises(DicomError, match="modality CT"):
        read_dicom(pydicom.data.get_testdata_file("CT_small.dcm"))
