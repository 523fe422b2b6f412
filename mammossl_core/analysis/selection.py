"""Model selection by the validation pretraining loss (paper V.A, Supp. Fig. 2): validation loss of each epoch's
checkpoint against its linear-evaluation validation AUC."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

import matplotlib.pyplot as plt

from .. import checkpoint as ck
from ..evaluate import linear_eval
from ..io import write_csv
from ..loading import profile_of


def loss_vs_auc(run_dir, data, pooling: str = "gap", profile=None, **eval_overrides) -> pd.DataFrame:
    """One row per ``epoch_*.pt`` of a run (pretrained with ``keep_epoch_checkpoints``): epoch, validation
    pretraining loss, linear-evaluation validation and test AUC."""
    rows = []
    paths = sorted(Path(run_dir).glob("epoch_*.pt"))
    if not paths:
        raise FileNotFoundError(f"{run_dir}: no epoch_*.pt; pretrain with keep_epoch_checkpoints=True")
    profile = profile or profile_of(paths[0])
    for p in paths:
        meta = ck.load(p)
        r = linear_eval(data, p, pooling, profile, **eval_overrides)
        rows.append({"epoch": int(meta["epoch"]) - 1, "val_loss": float(meta["val_loss"]), "val_auc": r.val_auc,
                     "test_auc": r.auc})
    return pd.DataFrame(rows)


def correlation(table: pd.DataFrame) -> float:
    """Pearson correlation of validation loss and validation AUC (the paper reports R = -0.79)."""
    if len(table) < 3:
        return float("nan")
    return float(np.corrcoef(table.val_loss, table.val_auc)[0, 1])


def report(run_dir, data, out, pooling: str = "gap", profile=None, **eval_overrides) -> dict:
    """:func:`loss_vs_auc` of a run written to ``out/loss_vs_auc.csv`` with its plot ``loss_vs_auc.png``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t = loss_vs_auc(run_dir, data, pooling, profile, **eval_overrides)
    write_csv(out / "loss_vs_auc.csv", t)
    fig, ax = plt.subplots(figsize=(5, 4))
    ax.scatter(t.val_loss, t.val_auc)
    for _, r in t.iterrows():
        ax.annotate(str(int(r.epoch)), (r.val_loss, r.val_auc), fontsize=7)
    ax.set(xlabel="validation pretraining loss", ylabel="validation AUC (linear evaluation)",
           title="model selection by validation loss (Supp. Fig. 2)")
    fig.tight_layout()
    fig.savefig(out / "loss_vs_auc.png", dpi=110, bbox_inches="tight")
    return {"run": str(run_dir), "checkpoints": int(len(t)), "pearson_r": correlation(t)}
