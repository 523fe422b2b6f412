"""MIP attention heatmaps (paper Fig. 4, Supp. Fig. 3) and a localisation score on data with known lesion masks.

The localisation score is ours (the paper shows heatmaps only): for each malignant image, the share of MIP
attention that falls on grid cells touching a lesion, against the share of breast cells that touch a lesion
(what uniform attention would give); and the pointing game: whether the most attended cell touches a lesion.
"""
from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from scipy.stats import wilcoxon

from ..data.layout import PreparedDataset, read_mask
from ..evaldata import load_eval_data
from ..io import write_csv, write_json
from ..loading import classifier
from ..metrics import cluster_resamples
from ..pooling import POOLINGS, pooling_class
from ..results import Evaluation
from ..whole_image import grid_mask


def lesion_cells(lesion_mask: np.ndarray, r: int, c: int) -> np.ndarray:
    """Grid cells (``r x c``) that contain at least one lesion pixel."""
    t = torch.from_numpy(lesion_mask.astype(np.float32))[None, None]
    return (F.adaptive_max_pool2d(t, (r, c))[0, 0] > 0).numpy()


def localisation(weights: np.ndarray, breast_cells: np.ndarray, lesion: np.ndarray) -> dict:
    """Attention share on lesion cells, the lesion cells' share of breast cells, and the pointing-game hit."""
    w = weights * breast_cells
    w = w / max(w.sum(), 1e-12)
    on = lesion & breast_cells
    chance = on.sum() / max(breast_cells.sum(), 1)
    share = float(w[on].sum())
    return {"attention_on_lesion": share, "chance": float(chance), "enrichment": share / chance if chance else np.nan,
            "pointing_hit": bool(on.flat[int(np.argmax(w))])}


@torch.no_grad()
def attention_maps(model, ev, rows: np.ndarray, device="cpu", batch: int = 16):
    """MIP (or SA) weights ``(N, r, c)``, grid breast masks ``(N, r, c)`` and malignancy scores for ``rows``."""
    model.eval()
    ws, ms, ss = [], [], []
    for s in range(0, len(rows), batch):
        x, breast = ev.images(rows[s:s + batch], device)
        h = model.grid(x)
        gm = grid_mask(breast, h.shape[2], h.shape[3])
        logit, w = model.classify(h, gm)
        ws.append(w.cpu().numpy())
        ms.append(gm.cpu().numpy())
        ss.append(torch.sigmoid(logit).cpu().numpy())
    return np.concatenate(ws), np.concatenate(ms), np.concatenate(ss)


def localisation_table(model, ev, data, split: str = "test", device="cpu") -> pd.DataFrame:
    """One row per malignant image of ``split`` with :func:`localisation`'s fields."""
    ds = PreparedDataset(data)
    t = ev.table
    rows = np.nonzero(((t.split == split) & (t.label == 1)).to_numpy())[0]
    w, gm, score = attention_maps(model, ev, rows, device)
    out = []
    for k, row in enumerate(rows):
        iid = t.image_id.iloc[row]
        les = ds.lesions[(ds.lesions.image_id == iid) & (ds.lesions.pathology == "malignant")]
        if les.empty:
            continue
        m = np.logical_or.reduce([read_mask(ds.root / p) for p in les.mask_path])
        out.append({"image_id": iid, "patient_id": t.patient_id.iloc[row], "score": float(score[k]),
                    **localisation(w[k], gm[k], lesion_cells(m, *w[k].shape))})
    return pd.DataFrame(out)


def heatmap_figure(model, ev, data, rows: np.ndarray, device="cpu", ncols: int = 3):
    """Images with the pooling attention overlaid and malignant lesions outlined (paper Fig. 4)."""
    ds = PreparedDataset(data)
    w, _, score = attention_maps(model, ev, rows, device)
    n = len(rows)
    nrows = int(np.ceil(n / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.6 * ncols, 5.8 * nrows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for k, (ax, row) in enumerate(zip(axes.flat, rows)):
        x, _ = ev.images(np.array([row]), "cpu")
        img = x[0, 0].numpy()
        att = F.interpolate(torch.from_numpy(w[k])[None, None], size=img.shape, mode="nearest")[0, 0].numpy()
        ax.imshow(img, cmap="gray", vmin=0, vmax=1)
        im = ax.imshow(att, cmap="inferno", alpha=0.45, vmin=0, vmax=max(float(w[k].max()), 1e-6))
        iid = ev.table.image_id.iloc[row]
        for p in ds.lesions.loc[ds.lesions.image_id == iid, "mask_path"]:
            ax.contour(read_mask(ds.root / p), levels=[0.5], colors="cyan", linewidths=0.8)
        ax.set_title(f"{iid}\nlabel {ev.table.label.iloc[row]}, score {score[k]:.2f}", fontsize=8)
        fig.colorbar(im, ax=ax, fraction=0.04, label="attention")
    fig.tight_layout()
    return fig


def localisation_summary(loc: pd.DataFrame, n_boot: int = 2000, seed: int = 0) -> dict:
    """Two views of localisation over the malignant images, with the patient as the unit (the CC and MLO views of one
    lesion, and a patient's two breasts, are not independent):

    * attention mass: mean attention on lesion cells against chance (the lesion cells' share of the breast), their
      ratio (enrichment) with a 95% interval from a bootstrap over patients, and a one-sided Wilcoxon signed-rank
      test of ``attention_on_lesion > chance`` on the patients' mean differences;
    * pointing game: how often the most attended cell touches the lesion, against the rate a randomly chosen breast
      cell would reach (the mean chance), with a one-sided patient-bootstrap p-value.

    The two can disagree: attention that ranks the lesion cells first but is nearly flat hits in the pointing game
    while its mass stays at chance."""
    nan = float("nan")
    if not len(loc):
        return {"images": 0, "patients": 0, "attention_on_lesion": nan, "chance": nan, "enrichment": nan,
                "enrichment_low": nan, "enrichment_high": nan, "wilcoxon_p": nan, "pointing_hit_rate": nan,
                "pointing_p": nan}
    groups = loc.patient_id if "patient_id" in loc.columns else loc.image_id
    per = (loc.attention_on_lesion - loc.chance).groupby(groups.to_numpy()).mean().to_numpy()
    p = float(wilcoxon(per, alternative="greater").pvalue) if np.any(per != 0) else nan
    counts = cluster_resamples(len(loc), groups.to_numpy(), n_boot, seed)  # patients, each with all its images
    att, ch, hit = (loc[c].to_numpy(dtype=float) for c in ("attention_on_lesion", "chance", "pointing_hit"))
    enrich = (counts @ att) / np.maximum(counts @ ch, 1e-12)
    point = (counts @ hit - counts @ ch) / counts.sum(1)
    chance = float(ch.mean())
    return {"images": int(len(loc)), "patients": int(groups.nunique()), "attention_on_lesion": float(att.mean()),
            "chance": chance, "enrichment": float(att.mean() / max(chance, 1e-12)),
            "enrichment_low": float(np.percentile(enrich, 2.5)), "enrichment_high": float(np.percentile(enrich, 97.5)),
            "wilcoxon_p": p, "pointing_hit_rate": float(hit.mean()), "pointing_p": float((point <= 0).mean())}


def report(data, linear_out, out, split: str = "test", show: int = 6, device="cpu") -> dict:
    """Heatmaps and localisation of a MIP (or SA) classifier: a linear evaluation, finetuning or supervised run in
    ``linear_out`` (:func:`~mammossl_core.loading.classifier`). Writes ``heatmaps.png`` and, where the dataset has
    lesion masks, ``localisation.csv`` and ``localisation.json`` into ``out``."""
    saved = Evaluation.load(linear_out)
    if not pooling_class(saved.pooling).attends:
        raise ValueError(f"{linear_out}: {saved.pooling} pooling has no attention weights; use an attention pooling "
                         f"({', '.join(n for n, c in POOLINGS.items() if c.attends)})")
    model = classifier(linear_out, device=device)
    ev = load_eval_data(data)
    t = ev.table
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rows = np.nonzero(((t.split == split) & (t.label == 1)).to_numpy())[0][:show]
    fig = heatmap_figure(model, ev, data, rows, device)
    fig.savefig(out / "heatmaps.png", dpi=110, bbox_inches="tight")
    summary: dict = {"linear_out": str(linear_out), "pooling": saved.pooling, "split": split}
    if len(PreparedDataset(data).lesions):
        loc = localisation_table(model, ev, data, split, device)
        write_csv(out / "localisation.csv", loc)
        summary.update(localisation_summary(loc))
        write_json(out / "localisation.json", summary)
    return summary
