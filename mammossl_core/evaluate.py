"""Evaluation protocols on whole images (paper V.A-D, VI): linear evaluation, finetuning, the supervised
baseline, training-label fractions, k-fold cross-validation and cross-dataset transfer.

Every protocol is one call that returns an :class:`~mammossl_core.results.Evaluation` and saves it with the
per-image predictions into its output directory (:mod:`mammossl_core.results`), so that each number can be
recomputed from the run directory; the trained classifier is saved beside them and comes back with
:func:`mammossl_core.loading.classifier`.

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
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedGroupKFold
from tqdm.auto import tqdm

from .config import Profile, resolve
from .evaldata import EvalData, label_fraction_subset, load_eval_data
from .features import encoder_identity, grid_features, grid_statistics, reestimate_batchnorm
from .loading import grid_encoder
from .pooling import pooling_class
from .metrics import auc_ci
from .results import CrossValidation, Evaluation
from .whole_image import WholeImageClassifier, whole_image_augment


# ----------------------------------------------------------------------------- the fit loop
def batches(rows: np.ndarray, batch: int, g: torch.Generator | None):
    """``rows`` in batches of ``batch``: shuffled by ``g``, or in order when ``g`` is None."""
    order = rows[torch.randperm(len(rows), generator=g).numpy()] if g is not None else rows
    for s in range(0, len(order), batch):
        yield order[s:s + batch]


def fit(model: torch.nn.Module, loss: Callable, validate: Callable[[], float], params, train: np.ndarray, lr: float,
        wd: float, epochs: int, batch: int, seed: int, desc: str, train_mode: Callable[[], None] | None = None,
        keep_start: bool = False) -> list[dict]:
    """Adam on ``loss(rows, g)`` over shuffled batches of ``train``, with model selection on validation among the
    trained epochs. The starting state is scored first (``epoch`` -1 in the history); it is a candidate only with
    ``keep_start`` (finetuning, which starts from a trained stage-1 head): a head or network trained from random
    weights never returns them. ``validate()`` always runs with the model in eval mode. ``train_mode()`` puts the
    model in its training mode (default ``model.train()``; finetuning keeps batch norm frozen). Returns the history;
    the model ends in eval mode with the selected state."""
    opt = torch.optim.Adam(params, lr=lr, weight_decay=wd)
    g = torch.Generator().manual_seed(seed)
    model.eval()
    start = validate()
    history = [{"epoch": -1, "train_loss": float("nan"), "val": start}]
    best, best_score = copy.deepcopy(model.state_dict()), (start if keep_start and not np.isnan(start) else -np.inf)
    if epochs < 1 and not keep_start:
        raise ValueError(f"{desc}: {epochs} epochs would return the untrained starting state")
    for epoch in tqdm(range(epochs), desc=desc, leave=False):
        (train_mode or model.train)()
        losses = []
        for rows in batches(train, batch, g):
            value = loss(rows, g)
            opt.zero_grad(set_to_none=True)
            value.backward()
            opt.step()
            losses.append(float(value.detach()))
        model.eval()
        score = validate()
        history.append({"epoch": epoch, "train_loss": float(np.mean(losses)), "val": score})
        # the first trained epoch replaces a starting state that is not a candidate, whatever its score
        if (not np.isnan(score) and score > best_score) or (epoch == 0 and not keep_start):
            best_score, best = (-np.inf if np.isnan(score) else score), copy.deepcopy(model.state_dict())
    model.load_state_dict(best)
    model.eval()
    return history


def freeze_batchnorm(module: torch.nn.Module) -> torch.nn.Module:
    """Put every batch-norm layer of ``module`` in eval mode: its running statistics are used and never updated
    (its affine weights still train)."""
    for m in module.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.eval()
    return module


def _auc(y, s) -> float:
    return float(roc_auc_score(y, s)) if len(np.unique(y)) == 2 else float("nan")


@torch.no_grad()
def _scores(forward, rows: np.ndarray, batch: int) -> np.ndarray:
    out = []
    for r in batches(rows, batch, None):
        logits, _ = forward(r, train=False, g=None)
        out.append(torch.sigmoid(logits).float().cpu().numpy())
    return np.concatenate(out) if out else np.zeros(0)


def _fit_bce(model, forward, ev: EvalData, train, val, params, lr, wd, epochs, batch, seed, desc,
             train_mode=None, keep_start: bool = False) -> list[dict]:
    y_all = torch.as_tensor(ev.table.label.to_numpy().copy(), dtype=torch.float32)
    y_val = ev.table.label.to_numpy()[val]

    def loss(rows, g):
        logits, _ = forward(rows, train=True, g=g)
        return F.binary_cross_entropy_with_logits(logits, y_all[rows].to(logits.device))

    history = fit(model, loss, lambda: _auc(y_val, _scores(forward, val, batch)), params, train, lr, wd, epochs,
                  batch, seed, desc, train_mode, keep_start)
    return [{"epoch": h["epoch"], "train_loss": h["train_loss"], "val_auc": h["val"]} for h in history]


def _fit_logistic_head(model: WholeImageClassifier, grids, ev: EvalData, train: np.ndarray, e) -> list[dict]:
    """The linear layer on a parameter-free pooling's frozen features as an L2 logistic regression fitted to
    convergence (scikit-learn's L-BFGS: deterministic, the optimum of its objective, as the offline linear probes of
    CLIP and others), on the pooled embeddings standardised with the training rows' statistics. Its inverse
    regularisation ``C`` is the best mean AUC over patient-grouped, label-stratified folds of the training rows (ties:
    the stronger regularisation); validation and test are never seen. The fitted weights, with the standardisation
    folded in, are written into every member's linear layer. Returns the history: one row per ``C``, the chosen one
    marked."""
    with torch.no_grad():
        z = torch.cat([model.pooled(*grids(r))[0] for r in batches(np.arange(len(ev.table)), e.batch_size, None)])
    z = z.double().cpu().numpy()
    y, groups = ev.table.label.to_numpy(), ev.table.patient_id.to_numpy()
    mu, sd = z[train].mean(0), z[train].std(0) + 1e-6
    x = (z - mu) / sd

    def probe(c: float) -> LogisticRegression:
        return LogisticRegression(C=c, max_iter=10000, tol=1e-8)

    try:
        folds = list(StratifiedGroupKFold(n_splits=e.linear_head_folds).split(x[train], y[train], groups[train]))
    except ValueError:  # fewer training patients than folds
        folds = []
    cv = [float(np.mean([_auc(y[train][va], probe(c).fit(x[train][tr], y[train][tr]).decision_function(
        x[train][va])) for tr, va in folds if len(np.unique(y[train][tr])) == 2])) if folds else float("nan")
          for c in e.linear_head_cs]
    # too few training patients for a fold with both classes (a handful of images): scikit-learn's default C = 1
    best = int(np.nanargmax(cv)) if not np.isnan(cv).all() else int(np.argmin(np.abs(np.log(e.linear_head_cs))))
    fitted = probe(e.linear_head_cs[best]).fit(x[train], y[train])
    w = fitted.coef_[0] / sd
    with torch.no_grad():
        for member in model.members:  # every member starts from the same solution
            member.head.weight.copy_(torch.as_tensor(w, dtype=member.head.weight.dtype)[None])
            member.head.bias.fill_(float(fitted.intercept_[0] - (w * mu).sum()))
    return [{"C": c, "cv_auc": s, "chosen": k == best, "iterations": int(fitted.n_iter_[0]) if k == best else None}
            for k, (c, s) in enumerate(zip(e.linear_head_cs, cv))]


def _finish(out: Path | None, model, ev: EvalData, forward, batch: int, result: dict, history: list[dict],
            prof: Profile, seed: int) -> Evaluation:
    """Score every image with the model in eval mode; the evaluation (``result``: how the model was made), saved
    with its predictions and history when ``out`` is given."""
    model.eval()
    rows = np.arange(len(ev.table))
    scores = _scores(forward, rows, batch)
    pred = ev.table[["image_id", "patient_id", "split", "label"]].assign(score=scores)
    test = pred[pred.split == "test"]
    ci = auc_ci(test.label, test.score, groups=test.patient_id, n_boot=prof.eval.bootstrap, seed=seed)
    val = pred[pred.split == "val"]
    r = Evaluation(**result, auc=ci.auc, auc_low=ci.low, auc_high=ci.high, n_test=ci.n,
                   n_test_patients=int(test.patient_id.nunique()), val_auc=_auc(val.label, val.score),
                   profile=prof.name, dataset=str(ev.root), seed=seed)
    if out is not None:
        r.save(out, pred, pd.DataFrame(history))
    return r


def _save(model: WholeImageClassifier, path: Path, with_trunk: bool) -> None:
    """The classifier's weights: all of them, or (linear evaluation) all but the frozen trunk's parameters, which
    come back from the checkpoint or the seed (the trunk's buffers are kept: statistics that were re-estimated)."""
    trunk_params = {f"trunk.{n}" for n, _ in model.trunk.named_parameters()}
    state = {k: v for k, v in model.state_dict().items() if with_trunk or k not in trunk_params}
    torch.save(state, path)


# ----------------------------------------------------------------------------- the protocols
def _linear_stage(data, checkpoint, pooling, prof: Profile, split, label_fraction, seed, device, cache_dir, encoder,
                  bn):
    """Frozen grids, feature standardisation, and pooling + linear layer fitted on them; returns what the
    protocols need to score or go on (the model holds the real trunk, so finetuning continues from it)."""
    e = prof.eval
    ev = load_eval_data(data, split)
    enc = encoder or (None if checkpoint is not None else prof.pretrain.encoder)
    trunk, m, meta = grid_encoder(checkpoint, enc, seed)
    train = label_fraction_subset(ev.table, ev.idx("train"), label_fraction, seed)
    if bn == "tiles":
        reestimate_batchnorm(trunk, data, prof, list(ev.table.image_id.iloc[train]), seed, device)
    elif bn is not None:
        raise ValueError(f"bn={bn!r}: use None (the encoder's own statistics) or 'tiles'")
    feats, masks = grid_features(ev, trunk, encoder_identity(checkpoint, enc, seed, bn), device, cache_dir=cache_dir)
    converged = e.converged_linear_head and pooling_class(pooling).starts_as_gap
    trained_pool = converged and pooling_class(pooling).learned
    restarts = e.mip_restarts if trained_pool else 1
    torch.manual_seed(seed)
    model = WholeImageClassifier(trunk, m, pooling, e.mip_hidden, restarts).to(device)
    pos = ev.table.pos.to_numpy()

    def grids(rows):
        p = pos[rows]
        # float16 -> float32 in torch (exact, like NumPy's, and ~3x faster: it was a third of a tiny linear evaluation)
        return torch.from_numpy(feats[p]).float().permute(0, 3, 1, 2).to(device), torch.from_numpy(masks[p]).to(device)

    model.norm.fit(*grid_statistics(feats, masks, pos[train]))
    history = []
    if converged:  # GAP's converged linear layer; MIP contains GAP, so its attention trains on from there
        for member in model.members:
            member.pool.start_as_gap()
        history = _fit_logistic_head(model, grids, ev, train, e)
    if not converged or trained_pool:
        # each member on its own (its own batch order), kept at its best validation epoch; then averaged
        for k, member in enumerate(model.members):
            def forward(rows, train, g, k=k):
                return model.classify(*grids(rows), member=k)

            h = _fit_bce(member, forward, ev, train, ev.idx("val"), list(member.parameters()), e.linear_lr,
                         e.linear_weight_decay, e.linear_epochs, e.batch_size, seed + k,
                         f"linear {pooling}" + (f" {k + 1}/{restarts}" if restarts > 1 else ""), keep_start=converged)
            history += [{**r, "restart": k} for r in h] if restarts > 1 else h

    def forward(rows, train, g):
        return model.classify(*grids(rows))

    result = {"protocol": "linear", "pooling": pooling, "checkpoint": None if checkpoint is None else str(checkpoint),
              "encoder": enc or meta.get("encoder"), "method": meta.get("method"), "bn": bn,
              "label_fraction": label_fraction, "split": split, "n_train": int(len(train)), "mip_hidden": e.mip_hidden,
              "restarts": restarts}
    return model, ev, forward, train, history, result


def linear_eval(data, checkpoint=None, pooling: str = "gap", profile: str | Profile | None = None, out=None,
                encoder: str | None = None, split: str = "split", label_fraction: float = 1.0, seed: int = 0,
                device: str = "cpu", cache_dir=None, bn: str | None = None, **overrides) -> Evaluation:
    """Linear evaluation on whole images (paper V.A-B): frozen encoder, a pooling head and a linear layer trained
    with Adam (lr 1e-4, weight decay 1e-3, batch 32, 100 epochs at the paper profile). MIP's attention layers are
    trained with the linear layer. Without a checkpoint the encoder is randomly initialised from ``seed``;
    ``bn="tiles"`` re-estimates its batch-norm statistics on training tiles first (the fair random baseline).
    Returns the :class:`~mammossl_core.results.Evaluation` (test AUC with its patient-bootstrap interval, ...)."""
    prof = resolve(profile, eval=overrides)
    model, ev, forward, _, history, result = _linear_stage(data, checkpoint, pooling, prof, split, label_fraction,
                                                           seed, device, cache_dir, encoder, bn)
    res = _finish(out, model, ev, forward, prof.eval.batch_size, result, history, prof, seed)
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
             **overrides) -> Evaluation:
    """Finetuning in two stages (paper V.C): the linear evaluation above (no augmentation), then the whole model
    unfrozen (50 epochs at lr 1e-5, weight decay 0.01 at the paper profile) with zoom, flips, rotation and
    brightness augmentation.

    Stage 2 starts from the stage-1 classifier in memory, and its batch-norm layers stay frozen: the feature
    standardisation and the heads of stage 1 were fitted to features computed with the encoder's own running
    statistics, and batch statistics of augmented whole images (batches of a few images) would shift them under the
    heads. The stage-1 state is scored on validation first and kept unless a finetuning epoch beats it."""
    prof = resolve(profile, eval=overrides)
    e = prof.eval
    model, ev, lin_forward, train, lin_history, lin_result = _linear_stage(
        data, checkpoint, pooling, prof, split, label_fraction, seed, device, cache_dir, None, None)
    if out is not None:
        stage1 = Path(out) / "linear"
        _finish(stage1, model, ev, lin_forward, e.batch_size, dict(lin_result), lin_history, prof, seed)
        _save(model, stage1 / "head.pt", with_trunk=False)
    forward = _full_forward(model, ev, device, augment=True)
    history = _fit_bce(model, forward, ev, train, ev.idx("val"), model.parameters(), e.finetune_lr,
                       e.finetune_weight_decay, e.finetune_epochs, e.batch_size, seed, f"finetune {pooling}",
                       train_mode=lambda: freeze_batchnorm(model.train()), keep_start=True)
    result = {**lin_result, "protocol": "finetune", "batchnorm": "frozen (the encoder's running statistics)"}
    res = _finish(out, model, ev, forward, e.batch_size, result, history, prof, seed)
    if out is not None:  # the whole trained classifier, for heatmaps (analysis.attention) and reuse
        _save(model, Path(out) / "model.pt", with_trunk=True)
    return res


def supervised(data, encoder: str | None = None, pooling: str = "gap", profile: str | Profile | None = None, out=None,
               split: str = "split", label_fraction: float = 1.0, seed: int = 0, device: str = "cpu",
               **overrides) -> Evaluation:
    """The supervised baseline (paper V.C): the same classifier trained from random initialisation (200 epochs at
    lr 1e-4 without weight decay at the paper profile), with the finetuning augmentations; batch norm trains."""
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
    result = {"protocol": "supervised", "pooling": pooling, "checkpoint": None, "encoder": enc, "method": "supervised",
              "label_fraction": label_fraction, "split": split, "n_train": int(len(train)),
              "mip_hidden": e.mip_hidden}
    res = _finish(out, model, ev, forward, e.batch_size, result, history, prof, seed)
    if out is not None:  # the whole trained classifier, for heatmaps (analysis.attention) and reuse
        _save(model, Path(out) / "model.pt", with_trunk=True)
    return res


def cross_validate(protocol, data, k: int = 5, out=None, checkpoints: list | None = None,
                   **kwargs) -> CrossValidation:
    """Run ``protocol`` (a function above) on each of the ``k`` folds of ``folds.csv`` (paper VI, Table 5):
    mean test AUC and its standard error over folds. ``checkpoints`` gives fold ``i`` its own encoder (pretrained on
    that fold's training images), so no fold's test images were seen in pretraining."""
    aucs = []
    for i in range(k):
        fold_out = None if out is None else Path(out) / f"fold{i}"
        extra = {} if checkpoints is None else {"checkpoint": checkpoints[i]}
        aucs.append(protocol(data, split=f"fold{i}", out=fold_out, **extra, **kwargs).auc)
    res = CrossValidation.of(aucs)
    return res.save(out) if out is not None else res
