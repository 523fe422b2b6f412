import numpy as np
import pandas as pd
import pytest

from mammossl_core.data.splits import assign_splits, kfold_splits


def _images(n_patients=200, seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for p in range(n_patients):
        lab = int(rng.random() < 0.3)
        for v in range(rng.integers(2, 5)):
            rows.append({"image_id": f"p{p}_{v}", "patient_id": f"p{p}", "label": lab})
    return pd.DataFrame(rows)


@pytest.mark.parametrize("ratios", [(7, 1, 2), (3, 1, 1)])
def test_split_no_leak_ratio_and_stratified(ratios):
    df = _images()
    df["split"] = assign_splits(df, ratios, seed=1)
    assert (df.groupby("patient_id").split.nunique() == 1).all()
    share = df.groupby("split").patient_id.nunique() / df.patient_id.nunique()
    for name, r in zip(("train", "val", "test"), ratios):
        assert abs(share[name] - r / sum(ratios)) < 0.05
    rates = df.groupby("split").label.mean()
    assert rates.max() - rates.min() < 0.08
    again = assign_splits(df, ratios, seed=1)
    assert (again == df.split).all()
    assert not (assign_splits(df, ratios, seed=2) == df.split).all()


def test_kfold_each_fold_311_and_tests_cover_everyone():
    df = _images()
    folds = kfold_splits(df, 5, seed=0)
    tested = set()
    for i in range(5):
        col = folds[f"fold{i}"]
        assert (folds.assign(s=col).groupby("patient_id").s.nunique() == 1).all()
        share = folds.assign(s=col).groupby("s").patient_id.nunique() / df.patient_id.nunique()
        assert abs(share["train"] - 0.6) < 0.05 and abs(share["val"] - 0.2) < 0.05
        tested |= set(folds.patient_id[col == "test"])
    assert tested == set(df.patient_id)


def test_too_few_patients_is_a_clear_error():
    with pytest.raises(ValueError, match="patients"):
        assign_splits(_images(5), (7, 1, 2))
