"""Metrics: ROC AUC with a seeded bootstrap confidence interval, accuracy (paper Tables 1-5)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.metrics import accuracy_score, roc_auc_score


@dataclass(frozen=True)
class AUC:
    """A point AUC and its bootstrap percentile interval."""

    auc: float
    low: float
    high: float
    n: int

    def __str__(self) -> str:
        return f"{self.auc:.3f} [{self.low:.3f}, {self.high:.3f}]"


def auc_ci(y_true, y_score, n_boot: int = 2000, alpha: float = 0.05, seed: int = 0) -> AUC:
    """ROC AUC (scikit-learn) with a ``1 - alpha`` percentile bootstrap interval over ``n_boot`` resamples.

    Resamples that hold one class only are skipped, as in nyukat's mammography meta-repository.
    """
    y_true, y_score = np.asarray(y_true), np.asarray(y_score, dtype=float)
    if len(np.unique(y_true)) < 2:
        raise ValueError("AUC needs both classes in y_true")
    point = roc_auc_score(y_true, y_score)
    rng = np.random.default_rng(seed)
    stats = []
    n = len(y_true)
    for _ in range(n_boot):
        idx = rng.integers(0, n, n)
        if y_true[idx].min() == y_true[idx].max():
            continue
        stats.append(roc_auc_score(y_true[idx], y_score[idx]))
    low, high = np.percentile(stats, [100 * alpha / 2, 100 * (1 - alpha / 2)])
    return AUC(float(point), float(low), float(high), n)


def accuracy(y_true, y_pred) -> float:
    return float(accuracy_score(y_true, y_pred))
