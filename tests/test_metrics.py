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


def _replicates(rng, n=150, r=4, spread=0.8):
    """Labels, patients, and ``r`` replicates of two arms whose gap varies between replicates (training variance)."""
    y = (rng.random(n) < 0.4).astype(int)
    patients = np.arange(n) // 3
    a = [y * (1.0 + spread * rng.standard_normal()) + rng.standard_normal(n) for _ in range(r)]
    b = [y * 0.5 + rng.standard_normal(n) for _ in range(r)]
    return y, patients, a, b


def test_pooled_difference_agrees_with_a_slow_reference():
    """The two-level bootstrap against an explicit loop: the same patient resamples (as multiplicities, which
    scikit-learn's AUC takes as sample weights) and the same replicate draws, one resample at a time."""
    from sklearn.metrics import roc_auc_score

    from mammossl_core.metrics import _resample_weights, pooled_paired_difference

    rng = np.random.default_rng(5)
    y, patients, a, b = _replicates(rng)
    fast = pooled_paired_difference(y, a, b, n_boot=300, seed=7, groups=patients)
    w = _resample_weights(y, patients, 300, 7)
    draws = np.random.default_rng([7, 2]).integers(0, len(a), (len(w), len(a)))
    slow = np.array([np.mean([roc_auc_score(y, a[r], sample_weight=w[k]) - roc_auc_score(y, b[r], sample_weight=w[k])
                              for r in draws[k]]) for k in range(len(w))])
    assert fast.low == pytest.approx(np.percentile(slow, 2.5), abs=1e-12)
    assert fast.high == pytest.approx(np.percentile(slow, 97.5), abs=1e-12)
    assert fast.se == pytest.approx(slow.std(ddof=1), abs=1e-12)
    points = [roc_auc_score(y, ar) - roc_auc_score(y, br) for ar, br in zip(a, b)]
    assert fast.diff == pytest.approx(np.mean(points)) and fast.replicates == pytest.approx(points)


def test_pooled_difference_holds_the_training_variance():
    """One replicate is the paired bootstrap; disagreeing replicates widen the interval beyond the patient sampling;
    changing one replicate's predictions moves the pooled estimate."""
    from mammossl_core.metrics import paired_difference, pooled_paired_difference

    rng = np.random.default_rng(6)
    y, patients, a, b = _replicates(rng, spread=1.5)
    one = pooled_paired_difference(y, a[:1], b[:1], n_boot=400, groups=patients)
    assert one == paired_difference(y, a[0], b[0], n_boot=400, groups=patients)
    pooled = pooled_paired_difference(y, a, b, n_boot=400, groups=patients)
    same = pooled_paired_difference(y, [a[0]] * 4, [b[0]] * 4, n_boot=400, groups=patients)
    assert pooled.se > same.se and same.se == pytest.approx(one.se)  # identical replicates add no variance
    moved = pooled_paired_difference(y, a[:3] + [rng.standard_normal(len(y))], b, n_boot=400, groups=patients)
    assert moved.diff != pooled.diff and moved.replicates[:3] == pooled.replicates[:3]
    assert moved.diff - pooled.diff == pytest.approx((moved.replicates[3] - pooled.replicates[3]) / 4)
    with pytest.raises(ValueError, match="same number"):
        pooled_paired_difference(y, a, b[:2])


def test_minimum_detectable_effect_and_holm():
    from mammossl_core.metrics import holm, minimum_detectable_effect

    assert minimum_detectable_effect(0.1) == pytest.approx(0.2802, abs=1e-4)
    assert holm([0.01, 0.04, 0.03]).tolist() == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.5, 0.001]).tolist() == pytest.approx([0.5, 0.002])
