import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from mammossl_core.metrics import auc_ci


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
