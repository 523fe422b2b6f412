import hashlib

import numpy as np
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


def _shared_estimator():
    import importlib.util

    from nbia_fixtures import REALFMT

    spec = importlib.util.spec_from_file_location("texture_stats_shared", REALFMT / "texture_stats.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_texture_and_intensity_fall_in_the_real_films_ranges():
    """Generator 2.0 at the paper size, both domains, measured with the real-film estimator: median spectral slope,
    breast share and intensity percentiles inside ``REAL_FILMS``."""
    from mammossl_core.config import REAL_FILMS
    from mammossl_core.data.texture import compare_with_real, synthetic_texture

    tables = {d: synthetic_texture(3, 11, d) for d in ("ddsm", "cmmd")}
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
        for side in {r["laterality"] for r, *_ in views}:
            pair = [(r, m) for r, _, _, m in views if r["laterality"] == side]
            assert [r["view"] for r, _ in pair] == ["CC", "MLO"] and pair[0][0]["density"] == pair[1][0]["density"]
            cols = [np.nonzero(m[0])[1].mean() / params.width for _, m in pair]
            assert abs(cols[0] - cols[1]) < 0.2


def test_spiculated_lesions_pull_the_tissue_in():
    """A spiculated mass or an architectural distortion retracts the surrounding tissue: the image around it differs
    from the same breast without the retraction beyond the lesion's own footprint."""
    from mammossl_core.data import synthetic as S

    params = S.SynthParams.of("paper", lesion_contrast=0.0)  # no lesion signal: only the retraction is left
    lesion = {"kind": "mass", "pathology": "malignant", "shape": "distortion", "radius": 30.0, "dot": 0.0,
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
        a = [(row["density"], row["status"], [les["shape_seed"] for les in lesions])
             for row, _, lesions, _ in generate_images(index, 0, film)]
        b = [(row["density"], row["status"], [les["shape_seed"] for les in lesions])
             for row, _, lesions, _ in generate_images(index, 0, digital)]
        assert not set(s for _, _, seeds in a for s in seeds) & set(s for _, _, seeds in b for s in seeds)
        assert a != b or not any(seeds for _, _, seeds in a)
