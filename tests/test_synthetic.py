import hashlib

import numpy as np

from mammossl_core.data.layout import PreparedDataset, read_mask, read_png16
from mammossl_core.data.synthetic import power_law_noise, synthesize
from mammossl_core.data.tiles import breast_mask


def _digest(d):
    h = hashlib.sha256()
    for p in sorted(d.rglob("*")):
        if p.is_file() and p.suffix in (".png", ".csv", ".json"):
            h.update(p.relative_to(d).as_posix().encode())
            h.update(p.read_bytes())
    return h.hexdigest()


def test_generator_is_byte_identical_whatever_the_workers(tmp_path):
    a = synthesize(tmp_path / "a", patients=12, seed=7, workers=1, progress=False)
    b = synthesize(tmp_path / "b", patients=12, seed=7, workers=2, progress=False)
    c = synthesize(tmp_path / "c", patients=12, seed=8, workers=2, progress=False)
    assert _digest(a) == _digest(b)
    assert _digest(a) != _digest(c)


def test_layout_and_16bit(synth_dir):
    ds = PreparedDataset(synth_dir)
    assert ds.meta["source"] == "synthetic"
    per_patient = ds.images.groupby("patient_id").size()
    assert per_patient.between(2, 4).all()
    assert set(ds.images.view) == {"CC", "MLO"} and set(ds.images.laterality) <= {"L", "R"}
    img = read_png16(synth_dir / ds.images.path[0])
    assert img.dtype == np.uint16 and img.shape == (256, 192)
    assert len(np.unique(img)) > 1000  # real 16-bit dynamic range, not 8-bit data in a 16-bit file


def test_masks_inside_breast_and_match_lesions(synth_dir):
    ds = PreparedDataset(synth_dir)
    assert len(ds.lesions) > 0
    for _, les in ds.lesions.iterrows():
        m = read_mask(synth_dir / les.mask_path)
        img = read_png16(synth_dir / ds.images.set_index("image_id").path[les.image_id])
        assert m.shape == img.shape and m.any()
        assert (m & ~breast_mask(img)).sum() <= 0.05 * m.sum()
        assert m.mean() < 0.08  # a needle in a haystack
    # the label is exactly "a malignant lesion is present"
    malignant = set(ds.lesions.loc[ds.lesions.pathology == "malignant", "image_id"])
    assert (ds.images.label == ds.images.image_id.isin(malignant).astype(int)).all()
    # a lesion shows in both views of its breast
    views = ds.lesions.merge(ds.images[["image_id", "view"]]).groupby("lesion_id").view.nunique()
    assert (views == 2).all()


def test_label_mix(synth_dir):
    ds = PreparedDataset(synth_dir)
    status = ds.images.status.value_counts(normalize=True)
    assert set(status.index) == {"malignant", "benign", "normal"}
    assert 0.15 < ds.images.label.mean() < 0.7


def test_power_law_spectrum():
    rng = np.random.default_rng(0)
    f = power_law_noise((256, 256), 3.0, rng)
    spec = np.abs(np.fft.fft2(f)) ** 2
    fy, fx = np.meshgrid(np.fft.fftfreq(256), np.fft.fftfreq(256), indexing="ij")
    r = np.sqrt(fx**2 + fy**2)
    sel = (r > 4 / 256) & (r < 64 / 256)
    slope = np.polyfit(np.log(r[sel]), np.log(spec[sel]), 1)[0]
    assert -3.3 < slope < -2.7


def test_domains_differ(tmp_path):
    a = PreparedDataset(synthesize(tmp_path / "d", patients=10, seed=1, progress=False, domain="ddsm"))
    b = PreparedDataset(synthesize(tmp_path / "c", patients=10, seed=1, progress=False, domain="cmmd"))
    ia, ib = a.load_image(a.images.image_id[0]), b.load_image(b.images.image_id[0])
    assert ia.shape != ib.shape
    # film has a bright film-edge band on the right, digital has a clean background
    assert ia[:, -1].mean() > 30000 and ib[:, -1].max() == 0
