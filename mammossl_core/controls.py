"""Difficulty controls of a dataset: detectors that know nothing about mammograms, scored like the book's models.

A benchmark on which one brightness number per image separates malignant from normal breasts cannot show what
learned features add. The negative controls here look at brightness only:

* ``bright_pNN``: the NN-th percentile of the intensity inside the breast (the mask eroded by ``erode`` pixels at
  the tiny size, scaled with the image height, so the skin line does not count);
* ``blurred_max_sS``: the maximum inside the same eroded breast of the image blurred with a Gaussian of ``S`` pixels
  (at the tiny size, scaled likewise): the brightest blob at that scale.

Each is scored on the test split like a model (malignant vs the rest: test AUC with its patient-bootstrap interval),
and beside them the lesion-detector ceiling (:func:`mammossl_core.evaldata.lesion_detector_ceiling`): a detector that
sees every lesion perfectly but cannot tell malignant from benign; and on synthetic data the lesion-aware oracle
(:func:`lesion_oracle`): given every lesion's mask and trained on many more annotated lesions than the book's models,
it shows how well the images allow the task to be solved. A useful benchmark has its negative controls near 0.5, its
oracle well above, and its models between them.

>>> card = difficulty_card("data/synth")   # doctest: +SKIP
"""
from __future__ import annotations

import os

import numpy as np
import pandas as pd
import torch
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


def difficulty_card(data: str | os.PathLike, split: str = "test", n_boot: int = 500, seed: int = 0,
                    oracle_patients: int = 0, oracle_epochs: int = 30) -> pd.DataFrame:
    """The controls' test AUCs (malignant vs the rest) with patient-bootstrap intervals, the lesion-detector
    ceiling and, for a synthetic dataset with ``oracle_patients`` > 0, the lesion-aware oracle
    (:func:`lesion_oracle`), one row each."""
    scores = brightness_controls(data, split)
    both = scores.label.nunique() == 2  # a split too small for both classes has no AUC

    def row(control, kind, y, s, groups):
        r = {"control": control, "kind": kind, "test AUC": np.nan, "low": np.nan, "high": np.nan}
        if both:
            ci = auc_ci(y, s, n_boot=n_boot, seed=seed, groups=groups)
            r.update({"test AUC": ci.auc, "low": ci.low, "high": ci.high})
        return r

    rows = [row(name, "brightness only (negative control)", scores.label, scores[name], scores.patient_id)
            for name in scores.columns if name not in ("image_id", "patient_id", "label")]
    ds = PreparedDataset(data)
    if not ds.lesions.empty:
        rows.append({"control": "lesion detector blind to pathology", "kind": "ceiling (every lesion seen)",
                     "test AUC": lesion_detector_ceiling(data, split), "low": np.nan, "high": np.nan})
    if oracle_patients and ds.meta.get("source") == "synthetic" and not ds.lesions.empty:
        o, _ = lesion_oracle(data, split, oracle_patients, oracle_epochs, seed)
        rows.append(row("lesion-aware CNN oracle", "oracle (lesion masks given, trained on "
                        f"{oracle_patients} other patients)", o.label, o.oracle, o.patient_id))
    return pd.DataFrame(rows)


class _OracleNet(torch.nn.Module):
    """A small CNN for lesion-centred crops: three conv blocks, global average pooling, one logit."""

    def __init__(self, width: int = 24):
        super().__init__()
        blocks, c = [], 1
        for k in range(3):
            blocks += [torch.nn.Conv2d(c, width * 2**k, 3, padding=1), torch.nn.BatchNorm2d(width * 2**k),
                       torch.nn.ReLU(), torch.nn.MaxPool2d(2)]
            c = width * 2**k
        self.features = torch.nn.Sequential(*blocks, torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())
        self.head = torch.nn.Linear(c, 1)

    def forward(self, x):
        return self.head(self.features(x)).squeeze(1)


def _crop(img: np.ndarray, mask: np.ndarray, size: int) -> np.ndarray:
    """The ``size`` square centred on the mask's centroid (reflect-padded at the borders), standardised: the
    oracle sees form, not the image's exposure."""
    rows, cols = np.nonzero(mask)
    r, c = int(rows.mean()), int(cols.mean())
    p = np.pad(np.asarray(img, np.float32), size, mode="reflect")[r + size // 2 : r + size // 2 + size,
                                                                  c + size // 2 : c + size // 2 + size]
    return (p - p.mean()) / (p.std() + 1e-6)


def _oracle_patient(args) -> tuple[list[np.ndarray], list[int]]:
    from .data.synthetic import generate_images

    index, seed, params, size = args
    crops, labels = [], []
    for v in generate_images(index, seed, params, purpose="oracle"):
        for les, m in zip(v.lesions, v.masks):
            if m.any():
                crops.append(_crop(v.image, m, size))
                labels.append(int(les["pathology"] == "malignant"))
    return crops, labels


def oracle_training_set(data: str | os.PathLike, patients: int, size: int, workers: int | None = None
                        ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Lesion-centred crops of ``patients`` synthetic patients drawn like ``data`` (its generator parameters and
    seed) from the oracle's own random streams, so none of them is a patient of ``data``: (crops, malignant, patient
    index)."""
    import multiprocessing as mp

    from .data.synthetic import SynthParams

    meta = PreparedDataset(data).meta
    params = SynthParams(**meta["parameters"])
    jobs = [(i, meta["seed"], params, size) for i in range(patients)]
    workers = workers or min(os.cpu_count() or 1, 8)
    with mp.get_context("fork").Pool(workers) as pool:
        out = pool.map(_oracle_patient, jobs, chunksize=max(1, patients // (4 * workers)))
    crops = [c for cs, _ in out for c in cs]
    labels = [y for _, ys in out for y in ys]
    index = [i for i, (cs, _) in enumerate(out) for _ in cs]
    return np.stack(crops)[:, None], np.asarray(labels), np.asarray(index)


def _dihedral(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """A random flip and quarter turn per batch (the crops' morphology has no orientation)."""
    k = int(torch.randint(4, (1,), generator=g))
    x = torch.rot90(x, k, (2, 3))
    return x.flip(3) if bool(torch.randint(2, (1,), generator=g)) else x


def _scores(net: torch.nn.Module, x: np.ndarray) -> np.ndarray:
    net.eval()
    with torch.no_grad():
        return torch.cat([net(torch.from_numpy(x[i : i + 512])) for i in range(0, len(x), 512)]).numpy()


def lesion_oracle(data: str | os.PathLike, split: str = "test", patients: int = 400, epochs: int = 30,
                  seed: int = 0, progress: bool = False) -> tuple[pd.DataFrame, float]:
    """The lesion-aware oracle: a small CNN trained on lesion-centred crops of its own synthetic patients (drawn
    like ``data``, :func:`oracle_training_set`) to tell malignant from benign lesions, its epoch chosen on the 20% of
    those patients it does not train on; it is then given ``data``'s lesion masks and scores each image of
    ``split`` by its most suspicious lesion (0 without one). Returns (one row per image: image_id, patient_id,
    label, oracle) and the held-out lesion AUC that picked the epoch. An upper reference: it knows where every
    lesion is, and has many more annotated lesions than the book's models."""
    from sklearn.metrics import roc_auc_score
    from tqdm.auto import tqdm

    from .data.layout import read_mask

    ds = PreparedDataset(data)
    size = resolve_crop(ds)
    x, y, idx = oracle_training_set(data, patients, size)
    hold = idx >= int(0.8 * patients)
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    net = _OracleNet()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3, weight_decay=1e-4)
    xt, yt = torch.from_numpy(x[~hold]), torch.from_numpy(y[~hold]).float()
    best, best_state = -1.0, None
    for _ in tqdm(range(epochs), desc="oracle", disable=not progress):
        net.train()
        perm = torch.randperm(len(xt), generator=g)
        for lo in range(0, len(perm), 64):
            b = perm[lo : lo + 64]
            loss = torch.nn.functional.binary_cross_entropy_with_logits(net(_dihedral(xt[b], g)), yt[b])
            opt.zero_grad()
            loss.backward()
            opt.step()
        auc = roc_auc_score(y[hold], _scores(net, x[hold]))
        if auc > best:  # trained from scratch: the first epoch's state is the floor, never the untrained one
            best, best_state = auc, {k: v.clone() for k, v in net.state_dict().items()}
    net.load_state_dict(best_state)
    t = load_eval_data(data).table
    t = t[t.split == split]
    store = ImageStore(data)
    pos = {i: k for k, i in enumerate(store.image_ids)}
    lesions = ds.lesions.groupby("image_id").mask_path.apply(list)
    scores = []
    for r in t.itertuples():
        paths = lesions.get(r.image_id, [])
        masks = [m for m in (read_mask(ds.root / p) for p in paths) if m.any()]
        if not masks:
            scores.append(0.0)
            continue
        img = np.asarray(store.images[pos[r.image_id]])
        crops = np.stack([_crop(img, m, size) for m in masks])[:, None]
        scores.append(float(1 / (1 + np.exp(-_scores(net, crops).max()))))
    return pd.DataFrame({"image_id": t.image_id.values, "patient_id": t.patient_id.values,
                         "label": t.label.values.astype(int), "oracle": scores}), float(best)


def resolve_crop(ds: PreparedDataset) -> int:
    """The oracle's crop side: the annotated-patch side of the dataset's profile."""
    from .config import resolve

    return resolve(ds.meta.get("profile", "tiny")).data.annotated_patch
