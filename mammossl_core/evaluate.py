"""Evaluation protocols on whole images (paper V.A-D, VI): linear evaluation, finetuning, the supervised
baseline, training-label fractions, k-fold cross-validation and cross-dataset transfer.

Every protocol is one call that writes ``result.json`` and the per-image predictions ``predictions.csv`` into its
output directory, so that each number can be recomputed from the run directory; the trained classifier is saved
beside them and comes back with :func:`mammossl_core.loading.classifier`.

Cross-dataset transfer needs nothing special: give a checkpoint pretrained on one prepared dataset and ``data``
of another. The annotated-patch evaluation (Table 1) is :mod:`mammossl_core.patch_eval`.
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from sklearn.metrics import roc_auc_score
from tqdm.auto import tqdm

from .config import Profile, resolve
from .evaldata import EvalData, label_fraction_subset, load_eval_data
from .features import grid_features, grid_statistics
from .io import write_csv, write_json
from .loading import grid_encoder
from .metrics import auc_ci
from .whole_image import WholeImageClassifier, whole_image_augment


# ----------------------------------------------------------------------------- the fit loop
def batches(rows: np.ndarray, batch: int, g: torch.Generator | None):
    """``rows`` in batches of ``batch``: shuffled by ``g``, or in order when ``g`` is None."""
    order = rows[torch.randperm(len(rows), generator=g).numpy()] if g is not None else rows
    for s in range(0, len(order), batch):
        yield order[s:s + batch]


def fit(model: torch.nn.Module, loss: Callable, validate: Callable[[], float], params, train: np.ndarray, lr: float,
        wd: float, epochs: int, batch: int, seed: int, desc: str) -> list[dict]:
    """Adam on ``loss(rows, g)`` over shuffled batches of ``train``; after each epoch ``validate()`` scores the
    model and the state with the best validation score is kept (the paper's model selection). Returns the history.
    """
    opt = torch.optim.Adam(params, lr=lr, weight_decay=wd)
    g = torch.Generator().manual_seed(seed)
    best, best_score, history = copy.deepcopy(model.state_dict()), -np.inf, []
    for epoch in tqdm(range(epochs), desc=desc, leave=False):
        model.train()
        losses = []
        for rows in batches(train, batch, g):
            value = loss(rows, g)
            opt.zero_grad(set_to_none=True)
            value.backward()
            opt.step()
            losses.append(float(value.detach()))
        score = validate()
        history.append({"epoch": epoch, "train_loss": float(np.mean(losses)), "val": score})
        if not np.isnan(score) and score > best_score:
            best_score, best = score, copy.deepcopy(model.state_dict())
    model.load_state_dict(best)
    return history


def _auc(y, s) -> float:
    return float(roc_auc_score(y, s)) if len(np.unique(y)) == 2 else float("nan")


@torch.no_grad()
def _scores(forward, rows: np.ndarray, batch: int) -> np.ndarray:
    out = []
    for r in batches(rows, batch, None):
        logits, _ = forward(r, train=False, g=None)
        out.append(torch.sigmoid(logits).float().cpu().numpy())
    return np.concatenate(out) if out else np.zeros(0)


def _fit_bce(model, forward, ev: EvalData, train, val, params, lr, wd, epochs, batch, seed, desc) -> list[dict]:
    y_all = torch.as_tensor(ev.table.label.to_numpy().copy(), dtype=torch.float32)
    y_val = ev.table.label.to_numpy()[val]

    def loss(rows, g):
        logits, _ = forward(rows, train=True, g=g)
        return F.binary_cross_entropy_with_logits(logits, y_all[rows].to(logits.device))

    history = fit(model, loss, lambda: _auc(y_val, _scores(forward, val, batch)), params, train, lr, wd, epochs,
                  batch, seed, desc)
    return [{"epoch": h["epoch"], "train_loss": h["train_loss"], "val_auc": h["val"]} for h in history]


def _finish(out: Path | None, ev: EvalData, forward, batch: int, result: dict, history: list[dict], prof: Profile,
            seed: int) -> dict:
    rows = np.arange(len(ev.table))
    scores = _scores(forward, rows, batch)
    pred = ev.table[["image_id", "patient_id", "split", "label"]].assign(score=scores)
    test = pred[pred.split == "test"]
    ci = auc_ci(test.label, test.score, n_boot=prof.eval.bootstrap, seed=seed)
    val = pred[pred.split == "val"]
    result.update({"auc": ci.auc, "auc_low": ci.low, "auc_high": ci.high, "n_test": ci.n,
                   "val_auc": _auc(val.label, val.score), "profile": prof.name, "dataset": str(ev.root), "seed": seed})
    if out is not None:
        out = Path(out)
        write_csv(out / "predictions.csv", pred)
        write_csv(out / "history.csv", pd.DataFrame(history))
        write_json(out / "result.json", result)
    return result


def _save(model: WholeImageClassifier, path: Path, with_trunk: bool) -> None:
    """The classifier's weights: all of them, or (linear evaluation) all but the frozen trunk's parameters, which
    come back from the checkpoint or the seed (the trunk's buffers are kept: statistics that were re-estimated)."""
    trunk_params = {f"trunk.{n}" for n, _ in model.trunk.named_parameters()}
    state = {k: v for k, v in model.state_dict().items() if with_trunk or k not in trunk_params}
    torch.save(state, path)


# ----------------------------------------------------------------------------- the protocols
def linear_eval(data, checkpoint=None, pooling: str = "gap", profile: str | Profile | None = None, out=None,
                encoder: str | None = None, split: str = "split", label_fraction: float = 1.0, seed: int = 0,
                device: str = "cpu", cache_dir=None, **overrides) -> dict:
    """Linear evaluation on whole images (paper V.A-B): frozen encoder, a pooling head and a linear layer trained
    with Adam (lr 1e-4, weight decay 1e-3, batch 32, 100 epochs at the paper profile). MIP's attention layers are
    trained with the linear layer. Returns the result dict (test AUC with its bootstrap interval, ...)."""
    prof = resolve(profile, eval=overrides)
    e = prof.eval
    ev = load_eval_data(data, split)
    enc = encoder or (None if checkpoint is not None else prof.pretrain.encoder)
    feats, masks, m = grid_features(ev, checkpoint, enc, device, cache_dir=cache_dir, seed=seed)
    torch.manual_seed(seed)
    trunk, _, _ = grid_encoder(checkpoint, enc, seed)
    torch.manual_seed(seed)
    model = WholeImageClassifier(trunk, m, pooling, e.mip_hidden).to(device)
    pos = ev.table.pos.to_numpy()

    def forward(rows, train, g):
        p = pos[rows]
        h = torch.from_numpy(np.asarray(feats[p], dtype=np.float32)).permute(0, 3, 1, 2).to(device)
        return model.classify(h, torch.from_numpy(masks[p]).to(device))

    train = label_fraction_subset(ev.table, ev.idx("train"), label_fraction, seed)
    model.norm.fit(*grid_statistics(feats, masks, pos[train]))
    params = list(model.pool.parameters()) + list(model.head.parameters())
    history = _fit_bce(model, forward, ev, train, ev.idx("val"), params, e.linear_lr, e.linear_weight_decay,
                       e.linear_epochs, e.batch_size, seed, f"linear {pooling}")
    result = {"protocol": "linear", "pooling": pooling, "checkpoint": None if checkpoint is None else str(checkpoint),
              "encoder": enc, "label_fraction": label_fraction, "split": split, "n_train": int(len(train)),
              "mip_hidden": e.mip_hidden}
    res = _finish(out, ev, forward, e.batch_size, result, history, prof, seed)
    if out is not None:
        _save(model, Path(out) / "head.pt", with_trunk=False)
    return res


def _full_forward(model, ev, device, augment: bool):
    def forward(rows, train, g):
        x, mask = ev.images(rows, device)
        if train and augment:
            x, mask = whole_image_augment(x, mask, g)
        return model(x, mask)
    return forward


def finetune(data, checkpoint, pooling: str = "gap", profile: str | Profile | None = None, out=None,
             split: str = "split", label_fraction: float = 1.0, seed: int = 0, device: str = "cpu", cache_dir=None,
             **overrides) -> dict:
    """Finetuning in two stages (paper V.C): the linear evaluation above (no augmentation), then the whole model
    unfrozen for 50 epochs at lr 1e-5, weight decay 0.01, with zoom, flips, rotation and brightness augmentation."""
    prof = resolve(profile, eval=overrides)
    e = prof.eval
    stage1 = None if out is None else Path(out) / "linear"
    linear_eval(data, checkpoint, pooling, prof, stage1, split=split, label_fraction=label_fraction, seed=seed,
                device=device, cache_dir=cache_dir)
    ev = load_eval_data(data, split)
    trunk, m, meta = grid_encoder(checkpoint)
    torch.manual_seed(seed)
    model = WholeImageClassifier(trunk, m, pooling, e.mip_hidden).to(device)
    if stage1 is not None:
        model.load_state_dict(torch.load(stage1 / "head.pt", weights_only=True), strict=False)
    train = label_fraction_subset(ev.table, ev.idx("train"), label_fraction, seed)
    forward = _full_forward(model, ev, device, augment=True)
    history = _fit_bce(model, forward, ev, train, ev.idx("val"), model.parameters(), e.finetune_lr,
                       e.finetune_weight_decay, e.finetune_epochs, e.batch_size, seed, f"finetune {pooling}")
    result = {"protocol": "finetune", "pooling": pooling, "checkpoint": str(checkpoint),
              "encoder": meta.get("encoder"), "label_fraction": label_fraction, "split": split,
              "n_train": int(len(train)), "mip_hidden": e.mip_hidden}
    res = _finish(out, ev, forward, e.batch_size, result, history, prof, seed)
    if out is not None:  # the whole trained classifier, for heatmaps (analysis.attention) and reuse
        _save(model, Path(out) / "model.pt", with_trunk=True)
    return res


def supervised(data, encoder: str | None = None, pooling: str = "gap", profile: str | Profile | None = None, out=None,
               split: str = "split", label_fraction: float = 1.0, seed: int = 0, device: str = "cpu",
               **overrides) -> dict:
    """The supervised baseline (paper V.C): the same classifier trained from random initialisation, 200 epochs at
    lr 1e-4 without weight decay, with the finetuning augmentations."""
    prof = resolve(profile, eval=overrides)
    e = prof.eval
    ev = load_eval_data(data, split)
    enc = encoder or prof.pretrain.encoder
    trunk, m, _ = grid_encoder(None, enc, seed)
    model = WholeImageClassifier(trunk, m, pooling, e.mip_hidden).to(device)
    train = label_fraction_subset(ev.table, ev.idx("train"), label_fraction, seed)
    forward = _full_forward(model, ev, device, augment=True)
    history = _fit_bce(model, forward, ev, train, ev.idx("val"), model.parameters(), e.supervised_lr, 0.0,
                       e.supervised_epochs, e.batch_size, seed, "supervised")
    result = {"protocol": "supervised", "pooling": pooling, "checkpoint": None, "encoder": enc,
              "label_fraction": label_fraction, "split": split, "n_train": int(len(train)),
              "mip_hidden": e.mip_hidden}
    res = _finish(out, ev, forward, e.batch_size, result, history, prof, seed)
    if out is not None:  # the whole trained classifier, for heatmaps (analysis.attention) and reuse
        _save(model, Path(out) / "model.pt", with_trunk=True)
    return res


def cross_validate(protocol, data, k: int = 5, out=None, **kwargs) -> dict:
    """Run ``protocol`` (a function above) on each of the ``k`` folds of ``folds.csv`` (paper VI, Table 5):
    mean test AUC and its standard error over folds."""
    aucs = []
    for i in range(k):
        fold_out = None if out is None else Path(out) / f"fold{i}"
        aucs.append(protocol(data, split=f"fold{i}", out=fold_out, **kwargs)["auc"])
    res = {"folds": k, "aucs": aucs, "mean_auc": float(np.mean(aucs)),
           "se_auc": float(np.std(aucs, ddof=1) / np.sqrt(k)) if k > 1 else float("nan")}
    if out is not None:
        write_json(Path(out) / "cv_result.json", res)
    return res
