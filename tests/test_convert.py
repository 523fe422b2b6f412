"""CBIS-DDSM and CMMD converters on small fake NBIA trees in TCIA's real formats (tests/nbia_fixtures.py)."""
import shutil

import numpy as np
import pandas as pd
import pytest

from mammossl_core.cli import main
from mammossl_core.data.cbis_ddsm import prepare_cbis_ddsm, read_description_csv
from mammossl_core.data.cmmd import prepare_cmmd
from mammossl_core.data.dicom import DicomError, needs_flip, read_dicom
from mammossl_core.data.layout import DataError, PreparedDataset, read_mask, read_png16
from nbia_fixtures import REALFMT, cbis_fixture, cmmd_fixture, write_dicom

pytestmark = pytest.mark.skipif(not REALFMT.is_dir(), reason="needs ../shared/realfmt (or $MAMMOSSL_REALFMT)")


@pytest.fixture(scope="module")
def cbis(tmp_path_factory):
    root = tmp_path_factory.mktemp("cbis")
    csv_dir, dicom_root, rows = cbis_fixture(root)
    out = root / "out"
    summary = prepare_cbis_ddsm(dicom_root, csv_dir, out, "tiny", workers=2)
    return csv_dir, dicom_root, rows, out, summary


def test_cbis_end_to_end(cbis):
    csv_dir, _, rows, out, summary = cbis
    ds = PreparedDataset(out)
    assert summary["failed"] == 0 and len(ds.images) == rows.full.nunique() and len(ds.lesions) == len(rows)
    # label 1 if any abnormality on the image is MALIGNANT; BENIGN_WITHOUT_CALLBACK is benign
    expect = rows.assign(m=rows.pathology.str.strip() == "MALIGNANT").groupby(
        rows.full.str.split("/").str[0]).m.max().astype(int)
    assert (ds.images.set_index("image_id").label == expect.loc[ds.images.image_id].to_numpy()).all()
    for _, r in ds.images.iterrows():
        img = read_png16(out / r.path)
        assert img.shape == (256, 192) and img.dtype == np.uint16
        assert not needs_flip(img)  # breast on the left for every image, right breasts and MONOCHROME1 included
        assert len(np.unique(img)) > 1000  # 16-bit dynamic range kept
    for _, les in ds.lesions.iterrows():
        m = read_mask(out / les.mask_path)
        assert m.shape == (256, 192) and 0 < m.mean() < 0.05  # the binary mask, never the grayscale crop
    report = pd.read_csv(out / "report.csv")
    assert report.reason.str.contains("resized to image", na=False).any()  # a mask of another size


def test_cbis_patient_level_split(cbis):
    ds = PreparedDataset(cbis[3])
    assert (ds.images.groupby("patient_id").split.nunique() == 1).all()
    assert set(ds.images.split) == {"train", "val", "test"}


def test_csv_fields_are_cleaned(cbis):
    df = read_description_csv(cbis[0] / "calc_case_description_test_set.csv")
    assert "breast_density" in df.columns  # "breast density" in calc files
    assert not df.roi_mask_file_path.str.contains("\n").any()


def test_resume_skips_verifies_and_repairs(cbis, tmp_path):
    csv_dir, dicom_root, _, out, _ = cbis
    again = tmp_path / "again"
    shutil.copytree(out, again)
    s = prepare_cbis_ddsm(dicom_root, csv_dir, again, "tiny", workers=1)
    assert s["written"] == 0 and s["skipped"] == len(PreparedDataset(again).images)
    victim = sorted((again / "images").glob("*.png"))[0]
    victim.write_bytes(victim.read_bytes()[:200])  # a half-written file from a killed run
    s = prepare_cbis_ddsm(dicom_root, csv_dir, again, "tiny", workers=1)
    assert s["written"] >= 1 and read_png16(victim).shape == (256, 192)
    assert not list(again.rglob("*.tmp*"))


def test_bad_inputs_are_reported_and_the_rest_goes_on(tmp_path, capsys):
    csv_dir, dicom_root, rows, = cbis_fixture(tmp_path / "bad")[:3]
    fulls = sorted(p for p in dicom_root.rglob("*.dcm") if read_dicom(p).series_description.startswith("full"))
    fulls[0].write_bytes(b"not a dicom at all" * 10)                                  # corrupt
    fulls[1].write_bytes(fulls[1].read_bytes()[:-5000])                              # truncated pixel data
    import pydicom

    from pydicom.encaps import encapsulate

    ds = pydicom.dcmread(fulls[2])
    ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.4.80"                         # JPEG-LS: no decoder here
    ds.PixelData = encapsulate([b"\xff\xd8" + bytes(100)])
    ds.save_as(fulls[2])
    shutil.rmtree([p for p in (dicom_root / "CBIS-DDSM").iterdir() if p.name.endswith("_1")][0])  # a missing mask
    out = tmp_path / "out"
    code = main(["prepare", "cbis-ddsm", "--dicom-root", str(dicom_root), "--csv-dir", str(csv_dir),
                 "--out", str(out), "--profile", "tiny", "--workers", "2"])
    assert code == 1
    report = pd.read_csv(out / "report.csv")
    failed = report[report.status == "failed"]
    text = " ".join(failed.reason.astype(str))
    assert str(fulls[0]) in text and str(fulls[1]) in text and str(fulls[2]) in text
    assert "1.2.840.10008.1.2.4.80" in text and "no ROI DICOM found" in text
    assert len(PreparedDataset(out).images) == rows.full.nunique() - 3
    assert "failed" in capsys.readouterr().err


def test_dicom_errors_name_the_file(tmp_path):
    p = write_dicom(tmp_path / "a.dcm", np.full((8, 8), 7, np.uint16), subject="x", series="y")
    p.write_bytes(p.read_bytes()[:-20])
    with pytest.raises(DicomError) as e:
        read_dicom(p)
    assert str(p) in str(e.value)
    with pytest.raises(DicomError, match="not found"):
        read_dicom(tmp_path / "nope.dcm")


def test_monochrome1_is_inverted(tmp_path):
    px = np.arange(64, dtype=np.uint16).reshape(8, 8) * 1000
    a = read_dicom(write_dicom(tmp_path / "m2.dcm", px, subject="s", series="x"))
    b = read_dicom(write_dicom(tmp_path / "m1.dcm", 65535 - px, subject="s", series="x", photometric="MONOCHROME1",
                               rle=True))
    assert np.array_equal(a.pixels, b.pixels)


def test_wrong_root_or_columns_fail_at_once(cbis, tmp_path):
    csv_dir, dicom_root = cbis[0], cbis[1]
    with pytest.raises(DataError, match="dicom-root"):
        prepare_cbis_ddsm(tmp_path / "nowhere", csv_dir, tmp_path / "o", "tiny")
    bad = tmp_path / "csv"
    shutil.copytree(csv_dir, bad)
    (bad / "mass_case_description_test_set.csv").write_text("a,b,c\n1,2,3\n")
    with pytest.raises(DataError, match="missing column"):
        prepare_cbis_ddsm(dicom_root, bad, tmp_path / "o", "tiny")
    with pytest.raises(DataError, match="no CBIS-DDSM DICOM"):
        prepare_cbis_ddsm(tmp_path, csv_dir, tmp_path / "o", "tiny")


def test_cmmd_labels_by_laterality_and_unlabelled_option(tmp_path):
    xlsx, dicom_root, table = cmmd_fixture(tmp_path / "cmmd")
    s = prepare_cmmd(dicom_root, xlsx, tmp_path / "out", "tiny", workers=2)
    ds = PreparedDataset(tmp_path / "out")
    assert s["failed"] == 0 and s["counts"]["images"] == 2 * len(table)  # CC + MLO of each named breast
    named = set(zip(table.ID1, table.LeftRight))
    assert all((p, l) in named for p, l in zip(ds.images.patient_id, ds.images.laterality))
    lab = table.set_index(["ID1", "LeftRight"]).classification.eq("Malignant").astype(int)
    assert all(lab[(p, l)] == y for p, l, y in zip(ds.images.patient_id, ds.images.laterality, ds.images.label))
    assert ds.images.label.nunique() == 2
    assert (ds.images.groupby("patient_id").split.nunique() == 1).all()
    folds = pd.read_csv(tmp_path / "out" / "folds.csv")
    assert [c for c in folds.columns if c.startswith("fold")] == [f"fold{i}" for i in range(5)]
    for _, r in ds.images.iterrows():
        img = read_png16(tmp_path / "out" / r.path)
        assert img.shape == (256, 208) and not needs_flip(img) and img.max() > 40000  # 8-bit files span 16 bits
    s2 = prepare_cmmd(dicom_root, xlsx, tmp_path / "out2", "tiny", keep_unlabeled=True, workers=2)
    ds2 = PreparedDataset(tmp_path / "out2")
    unl = ds2.images[ds2.images.label < 0]
    assert len(unl) == s2["counts"]["unlabeled_images"] > 0 and (unl.split == "unlabeled").all()
