"""The SSL pretraining trainer (paper sections IV.A and V.A-B).

One code path for a CPU process, one GPU, or many GPUs on many machines::

    mammossl pretrain --method byol --data DIR --profile tiny --out runs/byol
    torchrun --nproc_per_node=4 -m mammossl_core.pretrain --method swav --data DIR --profile paper --out runs/swav

* DDP; batch norm over the global batch (SyncBatchNorm on GPUs); bf16 autocast and channels-last on GPUs.
* LARS (momentum 0.9) with biases and batch-norm parameters excluded from weight decay and from the LARS
  adaptation; learning rate ``lr * global_batch / 4096``, linear warm-up then cosine decay, set every step.
  ViT-MAE uses AdamW (lr 0.0024, weight decay 0.05).
* The global batch order of an epoch is a permutation seeded by ``(seed, epoch)``; process ``r`` takes the
  ``r``-th slice of each global batch. Augmentation and every other random draw are seeded by
  ``(seed, step, rank)``. So a run resumed from a checkpoint continues exactly like an uninterrupted one.
* A checkpoint (``last.pt``) every ``checkpoint_every`` steps and at each epoch end, written atomically; the
  validation pretraining loss each epoch picks ``best.pt`` (the paper's model selection, Supp. Fig. 2).
* ``log.csv`` (every metric), TensorBoard events in ``tb/``, the resolved configuration in ``config.json``.
* A non-finite loss stops the run with :class:`NonFiniteLossError`; the last good checkpoint stays.
"""
from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from lightly.models.utils import get_weight_decay_parameters
from lightly.utils.lars import LARS
from lightly.utils.scheduler import cosine_warmup_schedule
from tqdm.auto import tqdm

from . import checkpoint, distributed as D
from .augment import MammoAugment
from .config import Profile, get_profile
from .data.layout import PreparedDataset, write_json
from .data.tiles import TileDataset, TileStore
from .ssl import build_method

LOG_FIELDS = ["step", "epoch", "loss", "val_loss", "lr", "images_per_s", "time"]


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or infinite."""


def _step_seed(seed: int, step: int, rank: int) -> int:
    return (seed * 1_000_003 + step * 1009 + rank) % (2**63 - 1)


class _Images(torch.utils.data.Dataset):
    """Whole images of the store for ViT-MAE, resized to a square, batched by index lists."""

    def __init__(self, store: TileStore, image_ids: list[str], size: int):
        self.store, self.size = store, size
        self.pos = np.nonzero(np.isin(np.asarray(store.image_ids), image_ids))[0]

    def __len__(self):
        return len(self.pos)

    def __getitem__(self, idx):
        x = torch.from_numpy(np.asarray(self.store.images[self.pos[np.atleast_1d(idx)]], dtype=np.float32) / 65535.0)
        return F.interpolate(x.unsqueeze(1), size=(self.size, self.size), mode="bilinear", antialias=True)


class _Patches(torch.utils.data.Dataset):
    """Annotated patches of one split, batched by index lists (labels unused in pretraining)."""

    def __init__(self, data_dir, patch: int, split: str):
        from .data.patches import AnnotatedPatches

        self.ap = AnnotatedPatches(data_dir, patch, split)

    def __len__(self):
        return len(self.ap)

    def __getitem__(self, idx):
        return torch.from_numpy(np.asarray(self.ap.arr[self.ap.pos[np.atleast_1d(idx)]], dtype=np.float32) / 65535.0
                                ).unsqueeze(1)


def build_dataset(prof: Profile, data_dir, method_name: str, split: str):
    """The unlabeled training (or validation) set of a method: tiled patches, annotated patches or whole images."""
    cfg = prof.pretrain
    ds = PreparedDataset(data_dir)
    ids = list(ds.split(split).image_id)
    if split == "train":  # unlabelled images (split "unlabeled") are pretraining data too
        ids += list(ds.split("unlabeled").image_id)
    if method_name == "mae" and cfg.source == "tiles":  # ViT-MAE's own input: whole images (paper V.B)
        store, _ = TileStore.build(data_dir, progress=False)
        return _Images(store, ids, cfg.mae_image_size)
    if cfg.source == "annotated":
        from .data.patches import build_annotated_patches

        if D.is_main():
            TileStore.build(data_dir, progress=False)
            build_annotated_patches(data_dir, prof.data.annotated_patch, seed=cfg.seed, progress=False)
        D.barrier()
        return _Patches(data_dir, prof.data.annotated_patch, split)
    if cfg.source != "tiles":
        raise ValueError(f"pretrain source {cfg.source!r}: use 'tiles' or 'annotated'")
    if D.is_main():
        TileStore.build(data_dir, progress=False)
    D.barrier()
    return TileDataset(TileStore(data_dir), prof.data.tile_size, prof.data.tile_overlap, prof.data.max_background, ids)


class _GlobalBatches(torch.utils.data.Sampler):
    """Index lists of this process's slice of each global batch of one epoch, from batch ``start`` on."""

    def __init__(self, n: int, global_batch: int, seed: int, epoch: int, start: int, shuffle: bool = True):
        self.n, self.gb, self.start = n, global_batch, start
        g = torch.Generator().manual_seed(seed * 7919 + epoch)
        self.perm = torch.randperm(n, generator=g).numpy() if shuffle else np.arange(n)
        self.local = global_batch // D.world_size()
        self.rank = D.rank()

    def __len__(self):
        return self.n // self.gb - self.start

    def __iter__(self):
        for k in range(self.start, self.n // self.gb):
            lo = k * self.gb + self.rank * self.local
            yield self.perm[lo : lo + self.local].tolist()


def _loader(ds, global_batch, seed, epoch, start, num_workers, pin, shuffle=True):
    sampler = _GlobalBatches(len(ds), global_batch, seed, epoch, start, shuffle)
    return torch.utils.data.DataLoader(ds, sampler=sampler, batch_size=None, num_workers=num_workers,
                                       pin_memory=pin, persistent_workers=False)


def build_optimizer(method, name: str, cfg, global_batch: int) -> tuple[torch.optim.Optimizer, float]:
    """LARS (SimCLR/BYOL/SwAV) or AdamW (MAE) with biases and norm parameters free of weight decay."""
    trainable = [m for m in [method] if m is not None]
    decay, no_decay = get_weight_decay_parameters(trainable)
    decay = [p for p in decay if p.requires_grad]
    no_decay = [p for p in no_decay if p.requires_grad]
    if name == "mae":
        lr = cfg.mae_lr
        opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.mae_weight_decay},
                                 {"params": no_decay, "weight_decay": 0.0}], lr=lr, betas=(0.9, 0.95))
    else:
        lr = cfg.lr * global_batch / cfg.lr_reference_batch
        # lightly's LARS leaves parameters with weight decay 0 out of the layer-wise adaptation
        opt = LARS([{"params": decay, "weight_decay": cfg.weight_decay},
                    {"params": no_decay, "weight_decay": 0.0}], lr=lr, momentum=cfg.momentum)
    return opt, lr


def _log_row(path: Path, row: dict) -> None:
    new = not path.exists()
    with open(path, "a", newline="") as f:
        w = csv.DictWriter(f, fieldnames=LOG_FIELDS)
        if new:
            w.writeheader()
        w.writerow({k: row.get(k, "") for k in LOG_FIELDS})


def _truncate_log(path: Path, step: int) -> None:
    """Drop log rows written after ``step`` (by a run that was killed after its last checkpoint)."""
    if not path.exists():
        return
    with open(path) as f:
        rows = [r for r in csv.DictReader(f) if int(r["step"]) <= step]
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=LOG_FIELDS)
        w.writeheader()
        w.writerows(rows)


def pretrain(
    method: str,
    data: str | os.PathLike,
    out: str | os.PathLike,
    profile: str | Profile = "tiny",
    resume: bool = False,
    device: str | None = None,
    progress: bool = True,
    on_step: Callable[[int], None] | None = None,
    **overrides,
) -> dict:
    """Pretrain ``method`` on the unlabeled training split of ``data`` and return a summary dict.

    ``overrides`` replace :class:`~mammossl_core.config.PretrainConfig` fields (``epochs=2``, ``batch_size=32``).
    ``on_step(step)`` is called after every step (tests and benchmarks use it to interrupt or time a run).
    """
    if isinstance(profile, str):
        prof = get_profile(profile, pretrain=overrides)
    else:
        prof = dataclasses.replace(profile, pretrain=dataclasses.replace(profile.pretrain, **overrides))
    cfg = prof.pretrain
    if cfg.source == "annotated" and method == "swav":
        cfg = dataclasses.replace(cfg, swav_prototypes=cfg.swav_prototypes_annotated,
                                  swav_queue_length=cfg.swav_queue_length_annotated)
    dev = D.setup(device)
    world, rank = D.world_size(), D.rank()
    if method == "mae":
        cfg = dataclasses.replace(cfg, batch_size=cfg.mae_batch_size) if "batch_size" not in overrides else cfg
        if cfg.source == "annotated":  # Table 1: the ViT sees the annotated patches at their own size
            cfg = dataclasses.replace(cfg, mae_image_size=prof.data.annotated_patch)
    gb = cfg.batch_size
    if gb % world:
        raise ValueError(f"batch_size={gb} is not divisible by the {world} processes")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)
    if dev.type == "cpu":
        torch.use_deterministic_algorithms(True, warn_only=True)

    train_ds = build_dataset(prof, data, method, "train")
    val_ds = build_dataset(prof, data, method, "val")
    steps_per_epoch = len(train_ds) // gb
    if steps_per_epoch == 0:
        raise ValueError(f"the training set has {len(train_ds)} samples, fewer than one batch of {gb}; "
                         f"lower --batch-size or add data")
    total = cfg.epochs * steps_per_epoch
    warmup = min(cfg.warmup_epochs * steps_per_epoch, total)

    model = build_method(method, cfg).to(dev)
    model = D.convert_sync_batchnorm(model, dev)
    if dev.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    opt, base_lr = build_optimizer(model, method, cfg, gb)
    # static_graph: the same parameters are used by both views every step; without it, DDP's gradient
    # reduction and the batch-norm collectives of the backward pass disagree (tests/test_distributed.py)
    ddp = torch.nn.parallel.DistributedDataParallel(
        model, device_ids=[dev.index] if dev.type == "cuda" else None, static_graph=True) if D.is_dist() else model
    patch = cfg.mae_image_size if method == "mae" else (
        prof.data.annotated_patch if cfg.source == "annotated" else prof.data.tile_size)
    aug = MammoAugment(cfg.augment, size=patch)

    step, epoch, batch_in_epoch, best_val = 0, 0, 0, math.inf
    log_path = out / "log.csv"
    if resume and (out / "last.pt").is_file():
        state = checkpoint.load(out / "last.pt", method=method, encoder=cfg.encoder)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        step, epoch, batch_in_epoch, best_val = state["step"], state["epoch"], state["batch_in_epoch"], state["best_val"]
        if D.is_main():
            _truncate_log(log_path, step)
    elif D.is_main() and log_path.exists():
        log_path.unlink()
    if D.is_main():
        write_json(out / "config.json", {"method": method, "data": str(data), "profile": prof.name,
                                         "world_size": world, "global_batch": gb, "lr": base_lr,
                                         "steps_per_epoch": steps_per_epoch, "total_steps": total,
                                         "pretrain": dataclasses.asdict(cfg), "data_config": dataclasses.asdict(prof.data)})
        if progress:
            print(f"[pretrain] {method} on {len(train_ds)} samples, {world} process(es), global batch {gb}, "
                  f"lr {base_lr:.4g}, {steps_per_epoch} steps/epoch, {total} steps", flush=True)
    writer = None
    if D.is_main():
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(str(out / "tb"), purge_step=step)

    def state_dict() -> dict:
        return {"method": method, "encoder": cfg.encoder, "model": model.state_dict(), "optimizer": opt.state_dict(),
                "step": step, "epoch": epoch, "batch_in_epoch": batch_in_epoch, "best_val": best_val,
                "config": json.loads(json.dumps(dataclasses.asdict(cfg)))}

    def save_last():
        if D.is_main():
            checkpoint.save(out / "last.pt", state_dict())
        D.barrier()

    amp = torch.autocast("cuda", dtype=torch.bfloat16) if dev.type == "cuda" else torch.autocast("cpu", enabled=False)
    g = torch.Generator(device=dev)
    limit = cfg.max_steps if cfg.max_steps is not None else total
    bar = tqdm(total=min(limit, total), initial=step, desc=f"pretrain {method}", unit="step",
               disable=not (progress and D.is_main()))
    last_loss = float("nan")
    pending: list[tuple] = []

    def flush(ips: float | None = None) -> None:
        """Check and log the losses of the steps since the last flush: one device sync every ``log_every`` steps.

        Runs before every checkpoint, so a checkpoint never holds weights updated by a non-finite loss."""
        nonlocal last_loss
        if not pending:
            return
        vals = torch.stack([p[2].float() for p in pending])
        if D.is_dist():
            torch.distributed.all_reduce(vals)
            vals = vals / world
        vals = vals.cpu().tolist()
        items = list(pending)
        pending.clear()
        for (s, e, _, lr), v in zip(items, vals):
            if not math.isfinite(v):
                raise NonFiniteLossError(
                    f"{method}: non-finite loss at step {s} (epoch {e}); the run stopped and the last good "
                    f"checkpoint {out / 'last.pt'} is kept. Lower the learning rate (lr={lr:.3g}) or check the data.")
            if D.is_main():
                _log_row(log_path, {"step": s + 1, "epoch": e, "loss": f"{v:.6f}", "lr": f"{lr:.6g}",
                                    "images_per_s": f"{ips:.1f}" if ips else "", "time": f"{time.time():.1f}"})
        last_loss = vals[-1]
        if D.is_main():
            s1 = items[-1][0] + 1
            writer.add_scalar("train/loss", last_loss, s1)
            writer.add_scalar("train/lr", items[-1][3], s1)
            if ips:
                writer.add_scalar("train/images_per_s", ips, s1)
        bar.set_postfix(loss=f"{last_loss:.4f}", img_s=f"{ips or 0:.0f}")

    try:
        while epoch < cfg.epochs and step < limit:
            model.train()
            loader = _loader(train_ds, gb, cfg.seed, epoch, batch_in_epoch, cfg.num_workers, dev.type == "cuda")
            t0, seen = time.perf_counter(), 0
            for x in loader:
                seed = _step_seed(cfg.seed, step, rank)
                torch.manual_seed(seed)
                g.manual_seed(seed)
                x = x.to(dev, non_blocking=True)
                lr = base_lr * cosine_warmup_schedule(step, max(total, 1), 1.0, 0.0, warmup, 0.0)
                for group in opt.param_groups:
                    group["lr"] = lr
                with amp:
                    if model.uses_views:
                        views = [aug(x, g), aug(x, g)]
                    else:
                        views = [x.expand(-1, 3, -1, -1)]
                    if dev.type == "cuda":
                        views = [v.contiguous(memory_format=torch.channels_last) for v in views]
                    loss = ddp(views, step).float().mean()
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                model.after_step(step, total)
                pending.append((step, epoch, loss.detach(), lr))
                step += 1
                batch_in_epoch += 1
                seen += gb
                bar.update()
                if on_step is not None:
                    on_step(step)
                if step % cfg.log_every == 0:
                    flush(seen / max(time.perf_counter() - t0, 1e-9))
                if step % cfg.checkpoint_every == 0:
                    flush()
                    save_last()
                if step >= limit:
                    break
            flush(seen / max(time.perf_counter() - t0, 1e-9))
            if batch_in_epoch >= steps_per_epoch:  # epoch finished: validation loss and model selection
                val = validation_loss(model, val_ds, aug, gb, cfg, dev, amp)
                epoch, batch_in_epoch = epoch + 1, 0
                improved = val < best_val
                best_val = min(best_val, val)
                if D.is_main():
                    _log_row(log_path, {"step": step, "epoch": epoch - 1, "val_loss": f"{val:.6f}",
                                        "time": f"{time.time():.1f}"})
                    writer.add_scalar("val/loss", val, step)
                save_last()
                if improved and D.is_main():
                    checkpoint.save(out / "best.pt", state_dict())
                if cfg.keep_epoch_checkpoints and D.is_main():
                    checkpoint.save(out / f"epoch_{epoch - 1:03d}.pt", {**state_dict(), "val_loss": val})
        save_last()
    finally:
        bar.close()
        if writer is not None:
            writer.close()
    if D.is_main() and not (out / "best.pt").is_file():
        checkpoint.save(out / "best.pt", state_dict())  # stopped before the first epoch ended
    summary = {"method": method, "steps": step, "epochs_done": epoch, "last_loss": last_loss,
               "best_val_loss": best_val, "run_dir": str(out)}
    if D.is_main():
        write_json(out / "summary.json", summary)
    return summary


@torch.no_grad()
def validation_loss(model, ds, aug, gb, cfg, dev, amp) -> float:
    """Mean pretraining loss on up to ``val_batches`` fixed batches of the validation split (fixed augmentation)."""
    if len(ds) == 0:
        return float("nan")
    model.eval()
    b = min(gb, len(ds)) // D.world_size() * D.world_size()
    if b == 0:
        return float("nan")
    g = torch.Generator(device=dev)
    losses = []
    for k, idx in enumerate(_GlobalBatches(len(ds), b, cfg.seed, 0, 0, shuffle=False)):
        if k >= cfg.val_batches:
            break
        g.manual_seed(cfg.seed + 10_000 + k)
        torch.manual_seed(cfg.seed + 10_000 + k)
        x = ds[idx].to(dev)
        with amp:
            views = [aug(x, g), aug(x, g)] if model.uses_views else [x.expand(-1, 3, -1, -1)]
            losses.append(float(model(views, 0).float().mean()))
    model.train()
    return float(D.all_reduce_mean(torch.tensor(float(np.mean(losses)))))


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Arguments shared by ``mammossl pretrain`` and ``torchrun -m mammossl_core.pretrain``."""
    from .config import PROFILES
    from .encoders import ENCODERS
    from .ssl import METHODS

    p.add_argument("--method", required=True, choices=sorted(METHODS))
    p.add_argument("--data", required=True, help="prepared dataset directory")
    p.add_argument("--out", required=True, help="run directory (checkpoints, logs)")
    p.add_argument("--profile", choices=sorted(PROFILES), default="tiny")
    p.add_argument("--encoder", choices=ENCODERS, default=None)
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--batch-size", type=int, default=None, help="global batch size over all processes")
    p.add_argument("--lr", type=float, default=None, help="LARS learning rate at batch 4096 (scaled linearly)")
    p.add_argument("--augment", default=None, help='transforms joined by "+", e.g. crop+gamma+contrast')
    p.add_argument("--source", choices=["tiles", "annotated"], default=None, help="tiled or annotated patches")
    p.add_argument("--max-steps", type=int, default=None, help="stop after this many steps")
    p.add_argument("--checkpoint-every", type=int, default=None)
    p.add_argument("--num-workers", type=int, default=None)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--device", default=None, help="cpu, cuda (default: cuda if available)")
    p.add_argument("--resume", action="store_true", help="continue from RUN_DIR/last.pt")
    p.add_argument("--keep-epoch-checkpoints", action="store_true", default=None,
                   help="also keep epoch_N.pt of every epoch (for `mammossl analyse selection`)")


def run_from_args(a: argparse.Namespace) -> dict:
    names = ["encoder", "epochs", "batch_size", "lr", "augment", "source", "max_steps", "checkpoint_every",
             "num_workers", "seed", "keep_epoch_checkpoints"]
    overrides = {n: getattr(a, n) for n in names if getattr(a, n) is not None}
    try:
        return pretrain(a.method, a.data, a.out, a.profile, resume=a.resume, device=a.device, **overrides)
    finally:
        D.cleanup()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="torchrun -m mammossl_core.pretrain", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(ap)
    summary = run_from_args(ap.parse_args(argv))
    if D.is_main():
        print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
