import numpy as np
import pytest

from mammossl_core.data.layout import PreparedDataset
from mammossl_core.data.patches import CLASSES, AnnotatedPatches, build_annotated_patches
from mammossl_core.data.tiles import TileDataset, background_fractions, breast_mask, tile_grid


def test_grid_positions():
    rows, cols = tile_grid(256, 192, 32, 0.5)
    assert rows[0] == 0 and np.all(np.diff(rows) == 16) and rows[-1] + 32 <= 256
    assert cols[-1] == 192 - 32
    rows, _ = tile_grid(100, 100, 20, 0.0)
    assert list(rows) == [0, 20, 40, 60, 80]


def test_background_fraction_matches_direct_count():
    rng = np.random.default_rng(0)
    mask = rng.random((64, 48)) < 0.6
    rows, cols = tile_grid(64, 48, 16, 0.5)
    bg = background_fractions(mask, 16, rows, cols)
    for i, r in enumerate(rows):
        for j, c in enumerate(cols):
            assert bg[i, j] == pytest.approx(1 - mask[r:r + 16, c:c + 16].mean())


def test_tiles_respect_background_limit(store):
    idx = store.index(32, 0.5, 0.2)
    assert len(idx) > 100
    assert (idx["row"] % 16 == 0).all() and (idx["col"] % 16 == 0).all()
    for t in idx[:: max(1, len(idx) // 200)]:
        m = np.asarray(store.masks[t["image"], t["row"]:t["row"] + 32, t["col"]:t["col"] + 32])
        assert 1 - (m > 0).mean() <= 0.2 + 1e-6


def test_breast_mask_ignores_film_border_and_label(synth_dir):
    ds = PreparedDataset(synth_dir)
    img = ds.load_image(ds.images.image_id[0])
    m = breast_mask(img)
    assert not m[:, -3:].any()  # film-edge band on the right is not breast
    assert m[:, 0].any()  # attached to the chest wall
    assert 0.1 < m.mean() < 0.5


def test_tile_dataset_batches_and_split(store, synth_dir):
    ds = PreparedDataset(synth_dir)
    train = list(ds.split("train").image_id)
    tds = TileDataset(store, 32, image_ids=train)
    allowed = {store.image_ids.index(i) for i in train}
    assert set(np.unique(tds.tiles["image"])) <= allowed
    x = tds[[0, 1, 2]]
    assert x.shape == (3, 1, 32, 32) and str(x.dtype) == "torch.float32"
    assert 0 <= float(x.min()) and float(x.max()) <= 1
    assert (tds[list(range(16))] == tds[list(range(16))]).all()


def test_annotated_patch_classes(store, synth_dir):
    d = build_annotated_patches(synth_dir, 48, seed=0, progress=False)
    ap = AnnotatedPatches(synth_dir, 48)
    ds = PreparedDataset(synth_dir)
    table = ap.table
    # one patch per lesion and (almost always) one background patch per image
    assert (table.cls > 0).sum() == len(ds.lesions)
    assert (table.cls == 0).sum() >= 0.9 * len(ds.images)
    merged = table[table.cls > 0].merge(ds.lesions, on=["image_id", "lesion_id"])
    expect = merged.kind.map({"mass": 1, "calc": 3}) + (merged.pathology == "benign").astype(int)
    assert (merged.cls == expect).all()
    # lesion patches contain their lesion centre
    for _, r in merged.iterrows():
        assert r.row <= r.center_row < r.row + 48 and r.col <= r.center_col < r.col + 48
    x, y = ap.tensors()
    assert x.shape[1:] == (1, 48, 48) and len(CLASSES) == 5 and set(y.tolist()) <= set(range(5))
    assert (d / "patches.csv").is_file()
