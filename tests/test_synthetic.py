import hashlib

import numpy as np
import pytest
from scipy import ndimage

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
    a = synthesize(tmp_path / "a", patients=12, seed=7, workers=1, progress=False, unlabeled_patients=3)
    b = synthesize(tmp_path / "b", patients=12, seed=7, workers=2, progress=False, unlabeled_patients=3)
    c = synthesize(tmp_path / "c", patients=12, seed=8, workers=2, progress=False, unlabeled_patients=3)
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
        # a calcification cluster's disc may reach into the darkest skin fall-off that the segmentation leaves out
        assert (m & ~breast_mask(img)).sum() <= 0.1 * m.sum()
        assert m.mean() < 0.08  # a needle in a haystack
    # the label is exactly "a malignant lesion is present"; the unlabelled pool has neither labels nor annotations
    malignant = set(ds.lesions.loc[ds.lesions.pathology == "malignant", "image_id"])
    labelled = ds.images[ds.images.split != "unlabeled"]
    assert (labelled.label == labelled.image_id.isin(malignant).astype(int)).all()
    pool = ds.images[ds.images.split == "unlabeled"]
    assert len(pool) and (pool.label == -1).all() and not pool.image_id.isin(ds.lesions.image_id).any()
    # mimics: their own masks and kinds, in breasts of every status
    assert set(ds.mimics.kind) <= {"summation", "asymmetry", "vascular", "skin"} and len(ds.mimics)
    status = ds.images.set_index("image_id").status
    assert {"normal", "malignant"} <= set(status[ds.mimics.image_id])
    for m in ds.mimics.itertuples():
        assert read_mask(synth_dir / m.mask_path).sum() == m.area_px
    # a lesion shows in both views of its breast
    views = ds.lesions.merge(ds.images[["image_id", "view"]]).groupby("lesion_id").view.nunique()
    assert (views == 2).all()


def test_label_mix(synth_dir):
    ds = PreparedDataset(synth_dir)
    labelled = ds.images[ds.images.split != "unlabeled"]
    assert set(labelled.status) == {"malignant", "benign", "normal"}
    assert 0.15 < labelled.label.mean() < 0.7


def test_acquisition_varies_per_image_and_is_recorded(synth_dir):
    """Every image has its own dose, beam contrast, tone curve and noise, inside its domain's ranges."""
    from mammossl_core.data.synthetic.acquisition import RANGES

    ds = PreparedDataset(synth_dir)
    for name, (lo, hi) in RANGES["ddsm"].items():
        v = ds.images[f"acq_{name}"]
        assert v.between(lo, hi).all() and v.nunique() > 0.9 * len(v)  # recorded to 5 decimals
    # the two views of a breast are two exposures
    assert (ds.images.groupby(["patient_id", "laterality"]).acq_contrast.nunique() == 2).mean() > 0.9


def test_benign_and_malignant_differ_in_form_not_in_brightness():
    """Contrast, size and (for calcifications) dot size come from one distribution for both pathologies; masses of
    both have the integrated density of a circumscribed mass of their size."""
    from scipy.stats import ks_2samp

    from mammossl_core.data.synthetic import SynthParams
    from mammossl_core.data.synthetic.lesions import _DISC_DENSITY, draw_lesion, render_mass

    params = SynthParams.of("tiny")
    rng = np.random.default_rng(0)
    draws = {p: [draw_lesion(rng, p, params) for _ in range(400)] for p in ("benign", "malignant")}
    for key in ("contrast", "radius"):
        assert ks_2samp(*[[l[key] for l in draws[p] if l["shape"] != "distortion"] for p in draws]).pvalue > 0.01
    dots = [[l["dot"] for l in draws[p] if l["kind"] == "calc"] for p in draws]
    assert ks_2samp(*dots).pvalue > 0.01
    for p in draws:
        for les in [l for l in draws[p] if l["kind"] == "mass" and l["shape"] != "distortion"][:10]:
            prof, _, _ = render_mass(les, 1152, 896, 500, 300, 1.0)
            aspect = np.random.default_rng(les["shape_seed"]).uniform(1.0, 1.4)  # the shape stream's first draw
            assert prof.sum() == pytest.approx(_DISC_DENSITY * np.pi * les["radius"] ** 2 * aspect, rel=1e-3)


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
    a = PreparedDataset(synthesize(tmp_path / "d", patients=10, seed=1, progress=False, domain="ddsm", unlabeled_patients=0))
    b = PreparedDataset(synthesize(tmp_path / "c", patients=10, seed=1, progress=False, domain="cmmd", unlabeled_patients=0))
    ia, ib = a.load_image(a.images.image_id[0]), b.load_image(b.images.image_id[0])
    assert ia.shape != ib.shape
    # film has a bright film-edge band on the right, digital has a clean background
    assert ia[:, -1].mean() > 30000 and ib[:, -1].max() == 0


def _shared_estimator():
    import importlib.util

    from nbia_fixtures import REALFMT

    spec = importlib.util.spec_from_file_location("texture_stats_shared", REALFMT / "texture_stats.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_texture_and_intensity_fall_in_the_real_films_ranges():
    """The generator at the paper size, both domains, measured with the real-film estimator: median spectral slope,
    breast share and intensity percentiles inside ``REAL_FILMS``."""
    from mammossl_core.config import REAL_FILMS
    from mammossl_core.data.texture import compare_with_real, synthetic_texture

    # twelve patients (~40 images): with per-image acquisition the median of six patients' images moves by +-0.05
    tables = {d: synthetic_texture(12, 11, d) for d in ("ddsm", "cmmd")}
    table = compare_with_real(tables)
    print(table.to_string())
    assert (table[["ddsm in range", "cmmd in range"]] == "yes").all().all(), table.to_string()
    for t in tables.values():  # enough windows fit inside every breast for the slope to mean something
        assert t.beta.notna().all() and len(t) >= 6
    assert REAL_FILMS["ranges"]["beta"] == (2.9, 3.3)


def test_texture_table_is_the_same_whatever_the_workers():
    from mammossl_core.data.texture import synthetic_texture

    one = synthetic_texture(2, 5, "cmmd", profile="tiny", workers=1)
    assert len(one) >= 2 and one.equals(synthetic_texture(2, 5, "cmmd", profile="tiny", workers=2))


def test_package_estimator_is_the_shared_one():
    from mammossl_core.data.synthetic import SynthParams, render_image
    from mammossl_core.data.texture import texture_stats

    shared = _shared_estimator()
    rng = np.random.default_rng(3)
    img, _, _ = render_image(SynthParams.of("paper"), "MLO", "b", [], rng)
    assert texture_stats(img) == shared.stats(img.astype(np.float64))


def test_views_of_a_breast_share_anatomy_and_lesion():
    """CC and MLO of one breast: the same density, breast depth (nipple distance from the chest wall, within the
    MLO's compression allowance) and lesion at the same depth from the chest wall."""
    from mammossl_core.data.synthetic import SynthParams, breast_shape, draw_anatomy, generate_images

    rng = np.random.default_rng(0)
    anatomy = draw_anatomy(rng, "c")
    _, _, cc = breast_shape("CC", 1152, 896, rng, anatomy)
    _, _, mlo = breast_shape("MLO", 1152, 896, rng, anatomy)
    assert abs(mlo["nipple"][1] / cc["nipple"][1] - 1.04) < 0.12
    params = SynthParams.of("tiny", malignant_fraction=1.0, benign_fraction=0.0)
    for i in range(6):
        views = list(generate_images(i, 5, params))
        for side in {v.row["laterality"] for v in views}:
            pair = [(v.row, v.masks) for v in views if v.row["laterality"] == side]
            assert [r["view"] for r, _ in pair] == ["CC", "MLO"] and pair[0][0]["density"] == pair[1][0]["density"]
            cols = [np.nonzero(m[0])[1].mean() / params.width for _, m in pair]
            assert abs(cols[0] - cols[1]) < 0.2


def test_spiculated_lesions_pull_the_tissue_in():
    """A spiculated mass or an architectural distortion retracts the surrounding tissue: the image around it differs
    from the same breast without the retraction beyond the lesion's own footprint."""
    from mammossl_core.data import synthetic as S

    params = S.SynthParams.of("paper")
    lesion = {"kind": "mass", "pathology": "malignant", "shape": "distortion", "radius": 30.0, "dot": 0.0,
              "contrast": 0.0,  # no lesion signal: only the retraction is left
              "depth": 0.5, "offset_cc": 0.0, "offset_mlo": 0.0, "shape_seed": 1}
    anatomy = S.draw_anatomy(np.random.default_rng(1), "b")
    with_d, _, (mask,) = S.render_image(params, "CC", "b", [lesion], np.random.default_rng(2), anatomy)
    without, _, _ = S.render_image(params, "CC", "b", [], np.random.default_rng(2), anatomy)
    diff = np.abs(with_d.astype(float) - without.astype(float))
    ring = ndimage.binary_dilation(mask, iterations=20) & ~mask
    assert diff[ring].mean() > 500 and diff[~ndimage.binary_dilation(mask, iterations=150)].mean() < 50


def test_film_and_digital_datasets_of_one_seed_share_no_patient():
    """The synthetic CBIS-DDSM and CMMD sets drawn with one seed are different women: other anatomy, other lesions."""
    from mammossl_core.data.synthetic import SynthParams, generate_images

    film, digital = SynthParams.of("tiny", "ddsm"), SynthParams.of("tiny", "cmmd")
    for index in range(10):
        a = [(v.row["density"], v.row["status"], [les["shape_seed"] for les in v.lesions])
             for v in generate_images(index, 0, film)]
        b = [(v.row["density"], v.row["status"], [les["shape_seed"] for les in v.lesions])
             for v in generate_images(index, 0, digital)]
        assert not set(s for _, _, seeds in a for s in seeds) & set(s for _, _, seeds in b for s in seeds)
        assert a != b or not any(seeds for _, _, seeds in a)
