"""Your own mammograms, end to end: synthetic images written as a DICOM tree (MONOCHROME1 and 2, VOI window,
laterality and view tags, right breasts on the right) -> ``prepare folder`` -> ``predict`` with attention overlays,
the per-breast table and the offline HTML page (opened in headless Chromium where it is installed)."""
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mammossl_core.cli import main
from mammossl_core.data.dicom_export import write_dicom_tree
from mammossl_core.data.dicom import needs_flip
from mammossl_core.data.folder import prepare_folder
from mammossl_core.data.layout import DataError, PreparedDataset, read_png16

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")


@pytest.fixture(scope="module")
def tree(synth_dir, tmp_path_factory):
    return write_dicom_tree(synth_dir, tmp_path_factory.mktemp("dicom_tree"))


@pytest.fixture(scope="module")
def mip_model(synth_dir, store, tmp_path_factory):
    from mammossl_core.evaluate import linear_eval

    out = tmp_path_factory.mktemp("mip")
    linear_eval(synth_dir, None, "mip", "tiny", out=out, linear_epochs=1)
    return out


def test_folder_converter_on_a_written_dicom_tree(synth_dir, tree, tmp_path):
    src = PreparedDataset(synth_dir)
    s = prepare_folder(tree, tmp_path / "ds", "tiny", labels=tree / "labels.csv", domain="ddsm", workers=1)
    ds = PreparedDataset(tmp_path / "ds")
    assert s["written"] == len(src.images) and s["failed"] == 0
    assert ds.images.patient_id.nunique() == src.images.patient_id.nunique()
    got = ds.images.set_index(["patient_id", "laterality", "view"]).sort_index()
    want = src.images.set_index(["patient_id", "laterality", "view"]).sort_index()
    assert list(got.index) == list(want.index)  # laterality and view read from the headers
    # labels.csv names the labelled breasts; the unlabelled pool comes back unlabelled
    pool = (want.split == "unlabeled").to_numpy()
    assert (got.label.to_numpy()[~pool] >= 0).all() and (got.label.to_numpy()[pool] == -1).all()
    assert set(ds.images.split) <= {"train", "val", "test", "unlabeled"}
    for (key, g), (_, w) in zip(got.iterrows(), want.iterrows()):
        a, b = read_png16(ds.root / g.path), read_png16(src.root / w.path)
        assert not needs_flip(a)  # right breasts (stored on the right) turned to the left
        # MONOCHROME1 files and the full-range window come back to the original image within one grey level
        assert np.abs(a.astype(int) - b.astype(int)).max() <= 1, key


def test_a_handful_of_unlabelled_films_is_a_dataset_to_predict_on(tree, tmp_path):
    small = tmp_path / "small"
    for pid in sorted(p.name for p in tree.iterdir() if p.is_dir())[:2]:
        shutil.copytree(tree / pid, small / pid)
    (small / "notes.txt").write_text("not a DICOM")
    s = prepare_folder(small, tmp_path / "ds", "tiny", domain="ddsm", workers=1)
    ds = PreparedDataset(tmp_path / "ds")
    assert len(ds.images) == 8 and set(ds.images.split) == {"unlabeled"} and "no labels" in s["split_note"]
    from mammossl_core.config import get_profile
    from mammossl_core.data.products import build_products
    from mammossl_core.evaldata import load_eval_data
    from mammossl_core.pretrain import pretrain

    assert build_products(tmp_path / "ds", get_profile("tiny"), progress=False) == []
    with pytest.raises(DataError, match="pretraining only"):
        load_eval_data(tmp_path / "ds")
    s = pretrain("byol", tmp_path / "ds", tmp_path / "run", "tiny", progress=False, batch_size=16, max_steps=2)
    assert s["steps"] == 2  # an unlabelled dataset is pretraining data


def test_predict_end_to_end_with_bad_files_reported(tree, mip_model, synth_dir, tmp_path):
    inp = tmp_path / "in"
    shutil.copytree(tree, inp)
    first = sorted(inp.rglob("1-1.dcm"))[0]
    (inp / "truncated.dcm").write_bytes(first.read_bytes()[: len(first.read_bytes()) // 2])
    from PIL import Image

    Image.fromarray(np.full((64, 48), 120, np.uint8)).save(inp / "eight_bit.png")
    out = tmp_path / "pred"
    assert main(["predict", "--model", str(mip_model), "--input", str(inp), "--out", str(out), "--batch-size", "5"]) == 1
    pred = pd.read_csv(out / "predictions.csv", dtype={"patient_id": str})
    n = len(PreparedDataset(synth_dir).images)
    assert list(pred.columns) == ["image_id", "patient_id", "laterality", "view", "score", "file", "flipped"]
    assert len(pred) == n and pred.score.between(0, 1).all() and pred.flipped.any() and not pred.flipped.all()
    report = pd.read_csv(out / "report.csv")
    assert sorted(Path(f).name for f in report.file) == ["eight_bit.png", "truncated.dcm"]
    assert report.reason.str.contains("16-bit").any() and report.reason.str.contains("truncated|corrupt").any()
    breasts = pd.read_csv(out / "breasts.csv", dtype={"patient_id": str})
    assert len(breasts) == pred.groupby(["patient_id", "laterality"]).ngroups and (breasts.views == 2).all()
    assert np.allclose(breasts.set_index(["patient_id", "laterality"]).score.sort_index(),
                       pred.groupby(["patient_id", "laterality"]).score.mean().sort_index())
    assert len(list((out / "overlays").glob("*.png"))) == n
    assert (out / "index.html").read_text().count('<a href="overlays/') == n  # thumbnails link to the full size
    run = json.loads((out / "run.json").read_text())
    assert run["profile"] == "tiny" and run["pooling"] == "mip" and run["failed"] == 2
    # the same images through the prepared dataset score the same (same preprocessing as training)
    out2 = tmp_path / "pred2"
    main(["predict", "--model", str(mip_model), "--input", str(Path(synth_dir) / "images.csv"), "--out", str(out2)])
    p2 = pd.read_csv(out2 / "predictions.csv", dtype={"patient_id": str}).set_index(["patient_id", "laterality", "view"])
    p1 = pred.set_index(["patient_id", "laterality", "view"])
    assert np.abs(p1.score.sort_index().to_numpy() - p2.score.sort_index().to_numpy()).max() < 0.02
    if Path(CHROMIUM).exists():
        from playwright.sync_api import sync_playwright

        with sync_playwright() as p:
            b = p.chromium.launch(executable_path=CHROMIUM, args=[
                "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--no-first-run"])
            tab = b.new_page()
            tab.goto((out / "index.html").as_uri())
            assert tab.locator("table").count() == 2
            imgs = tab.locator("img")
            assert imgs.count() == n
            assert tab.evaluate("Array.from(document.images).every(i => i.complete && i.naturalWidth > 0)")
            b.close()


def test_predict_refuses_what_is_not_a_classifier(tree, tmp_path):
    with pytest.raises(DataError, match="not a trained classifier"):
        from mammossl_core.predict import predict

        predict(tmp_path, tree, tmp_path / "out")
    assert main(["predict", "--model", str(tmp_path), "--input", str(tree), "--out", str(tmp_path / "o")]) == 2


def test_synth_writes_a_dicom_tree(tmp_path):
    assert main(["synth", "--out", str(tmp_path / "tree"), "--patients", "10", "--profile", "tiny", "--format",
                 "dicom", "--workers", "1"]) == 0
    files = sorted((tmp_path / "tree").rglob("*.dcm"))
    labels = pd.read_csv(tmp_path / "tree" / "labels.csv", dtype={"patient_id": str})
    assert labels.patient_id.nunique() == 10 and len(files) >= 2 * len(labels)  # CC and MLO of every breast
    import pydicom

    kinds = {pydicom.dcmread(f, stop_before_pixels=True).PhotometricInterpretation for f in files}
    assert kinds == {"MONOCHROME1", "MONOCHROME2"}


def test_a_folder_with_nothing_usable_is_a_clear_error(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("no images here")
    with pytest.raises(DataError, match="no mammography DICOM"):
        prepare_folder(tmp_path / "empty", tmp_path / "ds", "tiny")
    assert not (tmp_path / "ds" / "dataset.json").exists()
    from mammossl_core.predict import _items

    with pytest.raises(DataError, match="no DICOM .* or PNG file"):
        _items(tmp_path / "empty")


def test_views_of_a_cbis_ddsm_breast_are_grouped_by_the_patient_in_their_names():
    from mammossl_core.predict import breast_patient

    ids = ["Mass-Test_P_00038_LEFT_CC", "Mass-Test_P_00038_LEFT_MLO", "Calc-Training_P_00038_RIGHT_CC_1", "D1-0001", ""]
    assert [breast_patient(i) for i in ids] == ["P_00038", "P_00038", "P_00038", "D1-0001", ""]
