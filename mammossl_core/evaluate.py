"""Evaluation protocols (paper IV.B, V.A-E, VI): linear evaluation, finetuning, the supervised baseline,
training-label fractions, k-fold cross-validation and cross-dataset transfer, and the annotated-patch
linear evaluation.

Every protocol is one call that writes ``result.json`` and the per-image (or per-patch) predictions
``predictions.csv`` into its output directory, so that each number can be recomputed from the run directory.
Frozen-encoder grids are computed once per (checkpoint, dataset) and cached as float16 memory maps.

Cross-dataset transfer needs nothing special: give a checkpoint pretrained on one prepared dataset and ``data``
of another.
"""
from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split
from tqdm.auto import tqdm

from .config import Profile, get_profile
from .data.layout import DataError, PreparedDataset, atomic_path, write_csv, write_json
from .data.tiles import TileStore
from .metrics import accuracy, auc_ci
from .whole_image import WholeImageClassifier, build_grid_encoder, grid_mask, whole_image_augment

PROTOCOLS = ("linear", "finetune", "supervised", "patches")


@dataclass
class EvalData:
    """Whole images of a prepared dataset (from its tile store) with labels and a train/val/test column."""

    root: Path
    store: TileStore
    table: pd.DataFrame  # image_id, patient_id, label, split, pos (row in the store)

    def idx(self, split: str) -> np.ndarray:
        return np.nonzero((self.table.split == split).to_numpy())[0]

    def images(self, rows: np.ndarray, device) -> tuple[torch.Tensor, torch.Tensor]:
        pos = self.table.pos.to_numpy()[rows]
        order = np.argsort(pos)  # memmap reads in file order, then restore the batch order
        x = np.asarray(self.store.images[pos[order]], dtype=np.float32)[np.argsort(order)] / 65535.0
        m = np.asarray(self.store.masks[pos[order]])[np.argsort(order)] > 0
        return torch.from_numpy(x).unsqueeze(1).to(device), torch.from_numpy(m).to(device)


def load_eval_data(data: str | os.PathLike, split: str = "split") -> EvalData:
    """Whole images of ``data`` with the split column ``split`` (``split`` or a fold of folds.csv: ``fold0``...)."""
    ds = PreparedDataset(data)
    store, _ = TileStore.build(data, progress=False)
    table = ds.images[["image_id", "patient_id", "label", "split"]].copy()
    if split != "split":
        folds_path = ds.root / "folds.csv"
        if not folds_path.is_file():
            raise DataError(f"{folds_path}: no cross-validation folds")
        folds = pd.read_csv(folds_path, dtype={"image_id": str, "patient_id": str})
        if split not in folds.columns:
            raise ValueError(f"{folds_path}: no column {split!r}; have {[c for c in folds.columns if c.startswith('fold')]}")
        table["split"] = table.image_id.map(folds.set_index("image_id")[split])
    pos = {iid: k for k, iid in enumerate(store.image_ids)}
    # unlabelled images (label -1, e.g. CMMD breasts the clinical table does not name) serve pretraining only
    table = table[table.image_id.isin(pos) & (table.label >= 0) & table.split.isin(["train", "val", "test"])]
    table = table.reset_index(drop=True)
    table["pos"] = table.image_id.map(pos)
    return EvalData(Path(data), store, table)


def label_fraction_subset(table: pd.DataFrame, rows: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """A patient-level, label-stratified ``fraction`` of the training rows (paper Fig. 5)."""
    if not 0 < fraction <= 1:
        raise ValueError(f"label fraction {fraction} must be in (0, 1]")
    if fraction == 1:
        return rows
    sub = table.iloc[rows]
    patients = sub.groupby("patient_id").label.max()
    classes = patients.nunique()
    # at least one patient of each label, and at least one left out (small datasets)
    k = min(max(int(np.floor(fraction * len(patients))), classes), len(patients) - classes)
    if k < classes:
        raise DataError(f"label fraction {fraction}: {len(patients)} training patients are too few to draw a "
                        "stratified subset")
    keep, _ = train_test_split(patients.index.to_numpy(), train_size=k, random_state=seed,
                               stratify=patients.to_numpy())
    return rows[sub.patient_id.isin(set(keep)).to_numpy()]


# ----------------------------------------------------------------------------- cached frozen features
def _cache_key(checkpoint, encoder, store: TileStore) -> str:
    h = hashlib.sha1()
    if checkpoint is not None:
        p = Path(checkpoint).resolve()
        st = p.stat()
        h.update(f"{p}|{st.st_size}|{st.st_mtime_ns}".encode())
    h.update(f"{encoder}|{tuple(store.images.shape)}|{store.image_ids[:3]}|{len(store.image_ids)}".encode())
    return h.hexdigest()[:16]


@torch.no_grad()
def grid_features(ev: EvalData, checkpoint=None, encoder: str | None = None, device="cpu", batch: int = 8,
                  cache_dir: str | os.PathLike | None = None, seed: int = 0) -> tuple[np.ndarray, np.ndarray, int]:
    """Frozen grids of every stored image: (``(N, r, c, m)`` float16, ``(N, r, c)`` bool, ``m``); cached on disk.

    Rows follow the store order (``ev.table.pos``)."""
    torch.manual_seed(seed)
    trunk, m, _ = build_grid_encoder(checkpoint, encoder)
    trunk = trunk.to(device).eval()
    cache = Path(cache_dir or (ev.root / "cache")) / f"grid_{_cache_key(checkpoint, encoder, ev.store)}"
    n = len(ev.store.image_ids)
    if (cache / "meta.json").is_file():
        meta = json.loads((cache / "meta.json").read_text())
        shape = tuple(meta["shape"])
        return (np.memmap(cache / "feats.f16", dtype=np.float16, mode="r", shape=shape),
                np.load(cache / "mask.npy"), m)
    cache.mkdir(parents=True, exist_ok=True)
    feats = None
    masks = None
    with atomic_path(cache / "feats.f16") as tmp:
        for s in tqdm(range(0, n, batch), desc="encoding whole images", leave=False):
            pos = np.arange(s, min(n, s + batch))
            x = torch.from_numpy(np.asarray(ev.store.images[pos], dtype=np.float32) / 65535.0).unsqueeze(1).to(device)
            h = trunk(x.expand(-1, 3, -1, -1)).float()
            if feats is None:
                shape = (n, h.shape[2], h.shape[3], h.shape[1])
                feats = np.memmap(tmp, dtype=np.float16, mode="w+", shape=shape)
                masks = np.zeros(shape[:3], bool)
            feats[pos] = h.permute(0, 2, 3, 1).cpu().numpy().astype(np.float16)
            breast = torch.from_numpy(np.asarray(ev.store.masks[pos]) > 0)
            masks[pos] = grid_mask(breast, shape[1], shape[2]).numpy()
        feats.flush()
        del feats
    np.save(cache / "mask.npy", masks)
    write_json(cache / "meta.json", {"shape": list(shape), "checkpoint": str(checkpoint), "encoder": encoder})
    return np.memmap(cache / "feats.f16", dtype=np.float16, mode="r", shape=shape), masks, m


# ----------------------------------------------------------------------------- training loops
def _auc(y, s) -> float:
    return float(roc_auc_score(y, s)) if len(np.unique(y)) == 2 else float("nan")


def _batches(rows: np.ndarray, batch: int, g: torch.Generator | None):
    order = rows[torch.randperm(len(rows), generator=g).numpy()] if g is not None else rows
    for s in range(0, len(order), batch):
        yield order[s:s + batch]


class _Cached:
    """Batches of cached grids for the head-only (linear evaluation) loop."""

    def __init__(self, ev: EvalData, feats: np.ndarray, masks: np.ndarray, device):
        self.ev, self.feats, self.masks, self.device = ev, feats, masks, device
        self.pos = ev.table.pos.to_numpy()

    def __call__(self, rows):
        p = self.pos[rows]
        h = torch.from_numpy(np.asarray(self.feats[p], dtype=np.float32)).permute(0, 3, 1, 2).to(self.device)
        return h, torch.from_numpy(self.masks[p]).to(self.device)


def _fit(model: WholeImageClassifier, forward, ev: EvalData, train: np.ndarray, val: np.ndarray, params, lr: float,
         wd: float, epochs: int, batch: int, seed: int, desc: str) -> tuple[dict, list[dict]]:
    """Adam on BCE; the state with the best validation AUC is kept (the paper's model selection)."""
    y_all = torch.as_tensor(ev.table.label.to_numpy().copy(), dtype=torch.float32)
    opt = torch.optim.Adam(params, lr=lr, weight_decay=wd)
    g = torch.Generator().manual_seed(seed)
    best, best_auc, history = copy.deepcopy(model.state_dict()), -1.0, []
    for epoch in tqdm(range(epochs), desc=desc, leave=False):
        model.train()
        losses = []
        for rows in _batches(train, batch, g):
            logits, _ = forward(rows, train=True, g=g)
            loss = F.binary_cross_entropy_with_logits(logits, y_all[rows].to(logits.device))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
        val_auc = _auc(ev.table.label.to_numpy()[val], _scores(forward, val, batch))
        history.append({"epoch": epoch, "train_loss": float(np.mean(losses)), "val_auc": val_auc})
        if not np.isnan(val_auc) and val_auc > best_auc:
            best_auc, best = val_auc, copy.deepcopy(model.state_dict())
    model.load_state_dict(best)
    return best, history


@torch.no_grad()
def _scores(forward, rows: np.ndarray, batch: int) -> np.ndarray:
    out = []
    for r in _batches(rows, batch, None):
        logits, _ = forward(r, train=False, g=None)
        out.append(torch.sigmoid(logits).float().cpu().numpy())
    return np.concatenate(out) if out else np.zeros(0)


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


def _profile(profile, overrides) -> Profile:
    if isinstance(profile, str):
        return get_profile(profile, eval=overrides)
    return dataclasses.replace(profile, eval=dataclasses.replace(profile.eval, **overrides)) if overrides else profile


def linear_eval(data, checkpoint=None, pooling: str = "gap", profile: str | Profile = "tiny", out=None,
                encoder: str | None = None, split: str = "split", label_fraction: float = 1.0, seed: int = 0,
                device: str = "cpu", cache_dir=None, **overrides) -> dict:
    """Linear evaluation on whole images (paper V.A-B): frozen encoder, a pooling head and a linear layer trained
    with Adam (lr 1e-4, weight decay 1e-3, batch 32, 100 epochs at the paper profile). MIP's attention layers are
    trained with the linear layer. Returns the result dict (test AUC with its bootstrap interval, ...)."""
    prof = _profile(profile, overrides)
    e = prof.eval
    ev = load_eval_data(data, split)
    enc = encoder or (None if checkpoint is not None else prof.pretrain.encoder)
    feats, masks, m = grid_features(ev, checkpoint, enc, device, cache_dir=cache_dir, seed=seed)
    torch.manual_seed(seed)
    model = WholeImageClassifier(torch.nn.Identity(), m, pooling, e.mip_hidden).to(device)
    batches = _Cached(ev, feats, masks, device)

    def forward(rows, train, g):
        h, mk = batches(rows)
        return model.classify(h, mk)

    train = label_fraction_subset(ev.table, ev.idx("train"), label_fraction, seed)
    model.norm.fit(*grid_statistics(feats, masks, ev.table.pos.to_numpy()[train]))
    params = list(model.pool.parameters()) + list(model.head.parameters())
    _, history = _fit(model, forward, ev, train, ev.idx("val"), params, e.linear_lr, e.linear_weight_decay,
                      e.linear_epochs, e.batch_size, seed, f"linear {pooling}")
    result = {"protocol": "linear", "pooling": pooling, "checkpoint": str(checkpoint), "encoder": enc,
              "label_fraction": label_fraction, "split": split, "n_train": int(len(train))}
    res = _finish(out, ev, forward, e.batch_size, result, history, prof, seed)
    if out is not None:
        _save_heads(model, Path(out) / "head.pt")
    return res


def grid_statistics(feats: np.ndarray, masks: np.ndarray, pos: np.ndarray, chunk: int = 16):
    """Per-channel mean and standard deviation of the cached grids ``feats[pos]`` over breast cells (streamed)."""
    m = feats.shape[-1]
    n, s1, s2 = 0, np.zeros(m), np.zeros(m)
    for k in range(0, len(pos), chunk):
        p = np.sort(pos[k:k + chunk])
        cells = np.asarray(feats[p], dtype=np.float64)[masks[p]]
        n, s1, s2 = n + len(cells), s1 + cells.sum(0), s2 + (cells**2).sum(0)
    if n == 0:
        raise DataError("no breast cells in the training images' grids")
    mean = s1 / n
    return torch.as_tensor(mean, dtype=torch.float32), torch.as_tensor(np.sqrt(np.maximum(s2 / n - mean**2, 0)),
                                                                        dtype=torch.float32)


def _save_heads(model: WholeImageClassifier, path: Path) -> None:
    """The trained parts of a linear evaluation: feature standardisation, pooling and linear layer."""
    torch.save({"norm": model.norm.state_dict(), "pool": model.pool.state_dict(), "head": model.head.state_dict()},
               path)


def _load_heads(model: WholeImageClassifier, heads: dict) -> None:
    if "norm" in heads:
        model.norm.load_state_dict(heads["norm"])
    model.pool.load_state_dict(heads["pool"])
    model.head.load_state_dict(heads["head"])


def load_classifier(checkpoint, linear_out, pooling: str | None = None, mip_hidden: int | None = None,
                    device="cpu", encoder: str | None = None) -> WholeImageClassifier:
    """The whole-image classifier of an evaluation in ``linear_out``. For a linear evaluation: the checkpoint's
    encoder (or a randomly initialised ``encoder`` when ``checkpoint`` is None) with the pooling and linear layer
    saved in ``head.pt``; for finetuning and the supervised baseline: every weight, from ``model.pt``.
    ``pooling`` defaults to the one in ``result.json``; MIP's hidden size is read from the weights."""
    saved = json.loads((Path(linear_out) / "result.json").read_text())
    if (Path(linear_out) / "model.pt").is_file():  # a finetuned or supervised classifier: every weight saved
        state = torch.load(Path(linear_out) / "model.pt", weights_only=True)
        ck = checkpoint if checkpoint is not None else (None if saved["protocol"] == "supervised" else saved["checkpoint"])
        trunk, m, _ = build_grid_encoder(ck, saved["encoder"] if ck is None else None)
        hidden = state["pool.V.weight"].shape[0] if saved["pooling"] == "mip" else 512
        model = WholeImageClassifier(trunk, m, saved["pooling"], hidden)
        model.load_state_dict(state)
        return model.to(device).eval()
    heads = torch.load(Path(linear_out) / "head.pt", weights_only=True)
    pooling = pooling or saved["pooling"]
    if pooling == "mip" and mip_hidden is None:
        mip_hidden = heads["pool"]["V.weight"].shape[0]
    if checkpoint is None:  # the random encoder of grid_features: same seed, same weights
        torch.manual_seed(saved.get("seed", 0))
        encoder = encoder or saved.get("encoder")
    trunk, m, _ = build_grid_encoder(checkpoint, encoder)
    model = WholeImageClassifier(trunk, m, pooling, mip_hidden or 512)
    _load_heads(model, heads)
    return model.to(device).eval()


def _full_forward(model, ev, device, augment: bool):
    def forward(rows, train, g):
        x, mask = ev.images(rows, device)
        if train and augment:
            x, mask = whole_image_augment(x, mask, g)
        return model(x, mask)
    return forward


def finetune(data, checkpoint, pooling: str = "gap", profile: str | Profile = "tiny", out=None,
             split: str = "split", label_fraction: float = 1.0, seed: int = 0, device: str = "cpu", cache_dir=None,
             **overrides) -> dict:
    """Finetuning in two stages (paper V.C): the linear evaluation above (no augmentation), then the whole model
    unfrozen for 50 epochs at lr 1e-5, weight decay 0.01, with zoom, flips, rotation and brightness augmentation."""
    prof = _profile(profile, overrides)
    e = prof.eval
    stage1 = None if out is None else Path(out) / "linear"
    linear_eval(data, checkpoint, pooling, prof, stage1, split=split, label_fraction=label_fraction, seed=seed,
                device=device, cache_dir=cache_dir)
    ev = load_eval_data(data, split)
    trunk, m, meta = build_grid_encoder(checkpoint)
    torch.manual_seed(seed)
    model = WholeImageClassifier(trunk, m, pooling, e.mip_hidden).to(device)
    if stage1 is not None:
        _load_heads(model, torch.load(stage1 / "head.pt", weights_only=True))
    train = label_fraction_subset(ev.table, ev.idx("train"), label_fraction, seed)
    forward = _full_forward(model, ev, device, augment=True)
    _, history = _fit(model, forward, ev, train, ev.idx("val"), model.parameters(), e.finetune_lr,
                      e.finetune_weight_decay, e.finetune_epochs, e.batch_size, seed, f"finetune {pooling}")
    result = {"protocol": "finetune", "pooling": pooling, "checkpoint": str(checkpoint),
              "encoder": meta.get("encoder"), "label_fraction": label_fraction, "split": split, "n_train": int(len(train))}
    res = _finish(out, ev, forward, e.batch_size, result, history, prof, seed)
    if out is not None:  # the whole trained classifier, for heatmaps (analysis.attention) and reuse
        torch.save(model.state_dict(), Path(out) / "model.pt")
    return res


def supervised(data, encoder: str | None = None, pooling: str = "gap", profile: str | Profile = "tiny", out=None,
               split: str = "split", label_fraction: float = 1.0, seed: int = 0, device: str = "cpu",
               **overrides) -> dict:
    """The supervised baseline (paper V.C): the same classifier trained from random initialisation, 200 epochs at
    lr 1e-4 without weight decay, with the finetuning augmentations."""
    prof = _profile(profile, overrides)
    e = prof.eval
    ev = load_eval_data(data, split)
    torch.manual_seed(seed)
    trunk, m, _ = build_grid_encoder(None, encoder or prof.pretrain.encoder)
    model = WholeImageClassifier(trunk, m, pooling, e.mip_hidden).to(device)
    train = label_fraction_subset(ev.table, ev.idx("train"), label_fraction, seed)
    forward = _full_forward(model, ev, device, augment=True)
    _, history = _fit(model, forward, ev, train, ev.idx("val"), model.parameters(), e.supervised_lr, 0.0,
                      e.supervised_epochs, e.batch_size, seed, "supervised")
    result = {"protocol": "supervised", "pooling": pooling, "checkpoint": None,
              "encoder": encoder or prof.pretrain.encoder, "label_fraction": label_fraction, "split": split,
              "n_train": int(len(train))}
    res = _finish(out, ev, forward, e.batch_size, result, history, prof, seed)
    if out is not None:  # the whole trained classifier, for heatmaps (analysis.attention) and reuse
        torch.save(model.state_dict(), Path(out) / "model.pt")
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


def patch_encoder(checkpoint, device="cpu") -> torch.nn.Module:
    """The pooled encoder of a pretraining checkpoint, ``(B, 3, p, p) -> (B, m)``: the CNN backbone with global
    average pooling, or for ViT-MAE the mean of the ViT's patch tokens at its input size."""
    from . import checkpoint as ck
    from .encoders import Backbone

    state = ck.load(checkpoint)
    if state["method"] == "mae":
        from .config import PretrainConfig
        from .ssl.mae import MAE

        cfg = PretrainConfig(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in state["config"].items()})
        mae = MAE(cfg)
        mae.load_state_dict(state["model"])

        class _ViTPatches(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.mae = mae

            def forward(self, x):
                x = F.interpolate(x, size=(cfg.mae_image_size, cfg.mae_image_size), mode="bilinear", antialias=True)
                return self.mae.backbone.encode(images=x)[:, 1:].mean(1)

        return _ViTPatches().to(device).eval()
    net = Backbone(state["encoder"])
    net.load_state_dict({k[len("backbone."):]: v for k, v in state["model"].items() if k.startswith("backbone.")})
    return net.to(device).eval()


@torch.no_grad()
def patch_embeddings(data, checkpoint, patch: int, device="cpu", batch: int = 256):
    """Pooled embeddings (:func:`patch_encoder`) of the annotated patch set: (``(N, m)`` array, patch table)."""
    from .data.patches import AnnotatedPatches

    net = patch_encoder(checkpoint, device)
    ap = AnnotatedPatches(data, patch)
    x, _ = ap.tensors()
    emb = torch.cat([net(x[s:s + batch].to(device).expand(-1, 3, -1, -1)).float().cpu()
                     for s in range(0, len(x), batch)])
    return emb.numpy(), ap.table


def patch_linear_eval(data, checkpoint, profile: str | Profile = "tiny", out=None, seed: int = 0, device="cpu",
                      **overrides) -> dict:
    """Linear evaluation on the annotated patch set (paper IV, Table 1): 5-class accuracy, Adam lr 1e-3,
    weight decay 0.01; the epoch with the best validation accuracy is kept."""
    from .data.patches import CLASSES, build_annotated_patches

    prof = _profile(profile, overrides)
    e = prof.eval
    build_annotated_patches(data, prof.data.annotated_patch, seed=prof.pretrain.seed, progress=False)
    emb, table = patch_embeddings(data, checkpoint, prof.data.annotated_patch, device)
    x = torch.from_numpy(emb)
    x = (x - x[table.split.to_numpy() == "train"].mean(0)) / (x[table.split.to_numpy() == "train"].std(0) + 1e-6)
    y = torch.as_tensor(table.cls.to_numpy().copy())
    torch.manual_seed(seed)
    head = torch.nn.Linear(x.shape[1], len(CLASSES))
    opt = torch.optim.Adam(head.parameters(), lr=e.patch_linear_lr, weight_decay=e.patch_linear_weight_decay)
    g = torch.Generator().manual_seed(seed)
    tr = np.nonzero(table.split.to_numpy() == "train")[0]
    va = np.nonzero(table.split.to_numpy() == "val")[0]
    best, best_acc, history = copy.deepcopy(head.state_dict()), -1.0, []
    for epoch in range(e.linear_epochs):
        for rows in _batches(tr, e.batch_size, g):
            loss = F.cross_entropy(head(x[rows]), y[rows])
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            acc = accuracy(y[va], head(x[va]).argmax(1))
        history.append({"epoch": epoch, "val_accuracy": acc})
        if acc > best_acc:
            best_acc, best = acc, copy.deepcopy(head.state_dict())
    head.load_state_dict(best)
    with torch.no_grad():
        pred = head(x).argmax(1).numpy()
    te = table.split.to_numpy() == "test"
    result = {"protocol": "patches", "checkpoint": str(checkpoint), "accuracy": accuracy(y.numpy()[te], pred[te]),
              "val_accuracy": best_acc, "n_test": int(te.sum()), "profile": prof.name, "seed": seed}
    if out is not None:
        write_csv(Path(out) / "predictions.csv", table.assign(pred=pred))
        write_csv(Path(out) / "history.csv", pd.DataFrame(history))
        write_json(Path(out) / "result.json", result)
    return result
