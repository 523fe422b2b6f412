"""Metrics, and the bootstrap against a slow NumPy reference (Mann-Whitney AUC by explicit pair counting)."""
import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from mammossl_core.metrics import auc_ci, paired_auc_difference


def test_bootstrap_interval_contains_point_and_is_reproducible():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    s = y + rng.normal(0, 1.2, 200)
    a = auc_ci(y, s, n_boot=500, seed=3)
    assert a.auc == pytest.approx(roc_auc_score(y, s))
    assert a.low < a.auc < a.high and a.high - a.low < 0.3
    assert auc_ci(y, s, n_boot=500, seed=3) == a
    assert auc_ci(y, s, n_boot=500, seed=4) != a


def test_single_class_is_an_error():
    with pytest.raises(ValueError, match="both classes"):
        auc_ci([1, 1, 1], [0.1, 0.2, 0.3])


def _slow_auc(y, s):
    pos, neg = s[y == 1], s[y == 0]
    total = 0.0
    for p in pos:
        for q in neg:
            total += 1.0 if p > q else 0.5 if p == q else 0.0
    return total / (len(pos) * len(neg))


def _slow_patient_bootstrap(y, s_a, s_b, patients, n_boot, seed):
    """The same resampling written out loop by loop: patients in first-seen sorted order, drawn with replacement."""
    rng = np.random.default_rng(seed)
    ids = sorted(set(patients))
    rows = {p: [i for i in range(len(y)) if patients[i] == p] for p in ids}
    out = []
    for _ in range(n_boot):
        pick = rng.integers(0, len(ids), len(ids))
        idx = [i for k in pick for i in rows[ids[k]]]
        yy = y[idx]
        if yy.min() == yy.max():
            continue
        a = _slow_auc(yy, s_a[idx])
        out.append(a if s_b is None else a - _slow_auc(yy, s_b[idx]))
    return np.array(out)


def _data(seed=0, patients=30):
    rng = np.random.default_rng(seed)
    pid = np.repeat([f"P{k:03d}" for k in range(patients)], rng.integers(1, 5, patients))
    y = (rng.random(len(pid)) < 0.4).astype(int)
    a = y * 0.8 + rng.normal(0, 0.6, len(y))
    b = y * 0.3 + rng.normal(0, 0.6, len(y))
    return y, np.round(a, 2), np.round(b, 2), pid  # rounding makes ties, which both implementations count as 0.5


def test_patient_bootstrap_agrees_with_the_slow_reference():
    y, a, _, pid = _data()
    r = auc_ci(y, a, n_boot=200, seed=3, groups=pid)
    ref = _slow_patient_bootstrap(y, a, None, pid, 200, 3)
    assert r.auc == pytest.approx(_slow_auc(y, a))
    assert (r.low, r.high) == pytest.approx(tuple(np.percentile(ref, [2.5, 97.5])))


def test_paired_difference_agrees_with_the_slow_reference():
    y, a, b, pid = _data(1)
    d = paired_auc_difference(y, a, b, n_boot=200, seed=5, groups=pid)
    ref = _slow_patient_bootstrap(y, a, b, pid, 200, 5)
    assert d.diff == pytest.approx(_slow_auc(y, a) - _slow_auc(y, b))
    assert (d.low, d.high) == pytest.approx(tuple(np.percentile(ref, [2.5, 97.5])))
    assert d.p == pytest.approx(min(1.0, 2 * min((ref <= 0).mean(), (ref >= 0).mean())))
    assert d.groups == len(set(pid))


def test_resampling_patients_widens_the_interval_for_correlated_views():
    """Four near-identical images per patient: resampling images pretends there are four times as many patients."""
    rng = np.random.default_rng(0)
    pid = np.repeat(np.arange(40), 4)
    y = np.repeat(rng.random(40) < 0.5, 4).astype(int)
    s = np.repeat(y[::4] * 0.5 + rng.normal(0, 0.5, 40), 4) + rng.normal(0, 0.01, 160)
    by_image, by_patient = auc_ci(y, s, n_boot=500), auc_ci(y, s, n_boot=500, groups=pid)
    assert by_patient.high - by_patient.low > 1.5 * (by_image.high - by_image.low)


def test_identical_models_differ_by_zero():
    y, a, _, pid = _data(2)
    d = paired_auc_difference(y, a, a, n_boot=100, groups=pid)
    assert d.diff == 0 and d.low == 0 and d.high == 0 and d.p == 1.0
    with pytest.raises(ValueError, match="same images"):
        paired_auc_difference(y, a, a[:-1])


def test_resampled_aucs_are_scikit_learns_on_every_resample():
    """The bootstrap computes all resampled AUCs at once from image multiplicities; each equals scikit-learn's
    ``roc_auc_score`` on that resample's images (ties included), for resamples of patients and of images."""
    from mammossl_core.metrics import _resample_weights, _resamples, _weighted_aucs
    for groups_of in (lambda pid: pid, lambda pid: None):
        y, a, _, pid = _data(3)
        groups = groups_of(pid)
        idx = list(_resamples(y, groups, 300, 7))
        w = _resample_weights(y, groups, 300, 7)
        assert len(idx) == len(w) > 250
        for i, row in zip(idx, w):
            assert np.array_equal(np.bincount(i, minlength=len(y)), row)
        np.testing.assert_allclose(_weighted_aucs(y, a, w), [roc_auc_score(y[i], a[i]) for i in idx], rtol=0,
                                   atol=1e-12)
