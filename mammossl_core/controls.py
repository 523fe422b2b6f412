"""Difficulty controls of a dataset: detectors that know nothing about mammograms, scored like the book's models.

A benchmark on which one brightness number per image separates malignant from normal breasts cannot show what
learned features add. The negative controls here look at brightness only:

* ``bright_pNN``: the NN-th percentile of the intensity inside the breast (the mask eroded by ``erode`` pixels at
  the tiny size, scaled with the image height, so the skin line does not count);
* ``blurred_max_sS``: the maximum inside the same eroded breast of the image blurred with a Gaussian of ``S`` pixels
  (at the tiny size, scaled likewise): the brightest blob at that scale.

Each is scored on the test split like a model (malignant vs the rest: test AUC with its patient-bootstrap interval),
and beside them the lesion-detector ceiling (:func:`mammossl_core.evaldata.lesion_detector_ceiling`): a detector that
sees every lesion perfectly but cannot tell malignant from benign. A useful benchmark has its negative controls near
0.5 and its models between them and the ceiling.

>>> card = difficulty_card("data/synth")   # doctest: +SKIP
"""
from __future__ import annotations

import os

import numpy as np
import pandas as pd
from scipy import ndimage

from .data.layout import PreparedDataset
from .data.tiles import ImageStore
from .evaldata import lesion_detector_ceiling, load_eval_data
from .metrics import auc_ci

#: the controls' sizes in pixels at the tiny profile's 256 rows (scaled with the image height)
ERODE = 8
PERCENTILES = (99.0, 99.9)
BLUR_SIGMAS = (1.0, 2.0, 4.0)
_TINY_ROWS = 256


def brightness_controls(data: str | os.PathLike, split: str = "test") -> pd.DataFrame:
    """One row per labelled image of ``split``: image_id, patient_id, label and every control's score."""
    t = load_eval_data(data).table
    t = t[t.split == split]
    store = ImageStore(data)
    pos = {i: k for k, i in enumerate(store.image_ids)}
    rows = []
    for r in t.itertuples():
        img = np.asarray(store.images[pos[r.image_id]], dtype=np.float32) / 65535.0
        breast = np.asarray(store.masks[pos[r.image_id]]) > 0
        scale = img.shape[0] / _TINY_ROWS
        inner = ndimage.binary_erosion(breast, iterations=max(1, round(ERODE * scale)))
        inner = inner if inner.any() else breast
        row = {"image_id": r.image_id, "patient_id": r.patient_id, "label": int(r.label)}
        for q in PERCENTILES:
            row[f"bright_p{q:g}"] = float(np.percentile(img[inner], q))
        for s in BLUR_SIGMAS:
            row[f"blurred_max_s{s:g}"] = float(ndimage.gaussian_filter(img, s * scale)[inner].max())
        rows.append(row)
    return pd.DataFrame(rows)


def difficulty_card(data: str | os.PathLike, split: str = "test", n_boot: int = 500, seed: int = 0) -> pd.DataFrame:
    """The controls' test AUCs (malignant vs the rest) with patient-bootstrap intervals, and the lesion-detector
    ceiling, one row each."""
    scores = brightness_controls(data, split)
    rows = []
    for name in [c for c in scores.columns if c not in ("image_id", "patient_id", "label")]:
        row = {"control": name, "kind": "brightness only (negative control)", "test AUC": np.nan, "low": np.nan,
               "high": np.nan}
        if scores.label.nunique() == 2:  # a split too small for both classes has no AUC
            ci = auc_ci(scores.label, scores[name], n_boot=n_boot, seed=seed, groups=scores.patient_id)
            row.update({"test AUC": ci.auc, "low": ci.low, "high": ci.high})
        rows.append(row)
    if not PreparedDataset(data).lesions.empty:
        rows.append({"control": "lesion detector blind to pathology", "kind": "ceiling (every lesion seen)",
                     "test AUC": lesion_detector_ceiling(data, split), "low": np.nan, "high": np.nan})
    return pd.DataFrame(rows)
