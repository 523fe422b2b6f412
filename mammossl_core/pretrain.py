"""The SSL pretraining trainer (paper sections IV.A and V.A-B).

One code path for a CPU process, one GPU, or many GPUs on many machines::

    mammossl pretrain --method byol --data DIR --profile tiny --out runs/byol
    torchrun --nproc_per_node=4 -m mammossl_core.pretrain --method swav --data DIR --profile paper --out runs/swav

* DDP; batch norm over the global batch (SyncBatchNorm on GPUs); bf16 autocast and channels-last on GPUs; the
  encoders ``torch.compile``-d on GPUs (``--compile``; the first step's time, compilation included, is reported
  apart from the steady state); augmentations in fp32 outside autocast.
* The method's optimiser (:meth:`SSLMethod.build_optimizer <mammossl_core.ssl.base.SSLMethod.build_optimizer>`):
  LARS (momentum 0.9; multi-tensor :class:`~mammossl_core.lars.ForeachLARS`, lightly's semantics) with biases and
  batch-norm parameters excluded from weight decay and from the LARS adaptation; learning rate
  ``lr * global_batch / lr_reference_batch`` (the global batch over all processes and machines), linear warm-up
  then cosine decay, set every step. A step makes no device-to-host sync; losses are read every ``log_every``.
  ViT-MAE uses AdamW (lr 0.0024, weight decay 0.05).
* The global batch order of an epoch is a permutation seeded by ``(seed, epoch)``; process ``r`` takes the
  ``r``-th slice of each global batch. Augmentation and every other random draw are seeded by
  ``(seed, step, rank)``. So a run resumed from a checkpoint continues exactly like an uninterrupted one.
* A checkpoint (``last.pt``: weights, optimiser state, position) every ``checkpoint_every`` steps and at each epoch
  end, written atomically; the validation pretraining loss each epoch picks ``best.pt`` (the paper's model
  selection, Supp. Fig. 2), which holds the weights and metadata only: nothing resumes from it. ``init.pt`` (the
  starting weights) gives each layer's relative change in ``summary.json``, beside the method's own figures
  (:meth:`SSLMethod.summary_stats <mammossl_core.ssl.base.SSLMethod.summary_stats>`: SwAV's prototype usage).
  ``last.pt`` and ``init.pt`` are what resuming needs; :func:`drop_resume_state` deletes them once a run is
  finished for good (the artefact cache does, whose runs are keyed by their whole configuration), which leaves a
  third of the disk a finished run used.
* ``log.csv`` (every metric), TensorBoard events in ``tb/``, the resolved configuration in ``config.json``.
* A non-finite loss stops the run with :class:`NonFiniteLossError`; the last good checkpoint stays.
"""
from __future__ import annotations

import argparse
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
from lightly.utils.scheduler import cosine_warmup_schedule
from tqdm.auto import tqdm

from . import checkpoint, distributed as D
from .augment import MammoAugment
from .config import PROFILES, PretrainConfig, Profile, from_dict, replace, resolve
from .encoders import ENCODERS
from .io import write_json
from .loading import profile_of
from .pretrain_data import GlobalBatches, build_dataset, clean_batches, loader
from .runlog import NonFiniteLossError, RunLog
from .ssl import METHODS, Schedule, SSLMethod, build_method

__all__ = ["pretrain", "method_config", "fitting_batch", "drop_resume_state", "weight_change", "NonFiniteLossError",
           "main"]

def _step_seed(seed: int, step: int, rank: int) -> int:
    return (seed * 1_000_003 + step * 1009 + rank) % (2**63 - 1)


def method_config(method: str, prof: Profile, overrides: dict) -> PretrainConfig:
    """The pretraining configuration of ``method`` at ``prof``:

    * tiled patches: the batch of ``batch_size_by_tile`` for large tiles (the learning rate scales with it);
    * on the annotated patch set (IV.A-B): ``annotated_epochs``, ``annotated_batch_size`` and ``annotated_lr``
      (the paper's augmentation grid: batch 2048, LARS 0.4);
    * then the method's own choices (:meth:`SSLMethod.config_changes <mammossl_core.ssl.base.SSLMethod.config_changes>`).

    ``overrides`` (already applied to ``prof.pretrain``) win over every choice above."""
    cfg = prof.pretrain
    if cfg.source not in ("tiles", "annotated"):
        raise ValueError(f"pretrain source {cfg.source!r}: use 'tiles' or 'annotated'")
    if method not in METHODS:
        raise ValueError(f"unknown SSL method {method!r}; choose one of {sorted(METHODS)}")
    changes: dict = {}
    if cfg.source == "tiles" and prof.data.tile_size in cfg.batch_size_by_tile:
        changes["batch_size"] = cfg.batch_size_by_tile[prof.data.tile_size]
    if cfg.source == "annotated":
        changes.update(epochs=cfg.annotated_epochs, batch_size=cfg.annotated_batch_size, lr=cfg.annotated_lr,
                       lr_reference_batch=cfg.annotated_batch_size)
    changes.update(METHODS[method].config_changes(cfg, prof))
    return replace(cfg, _not_overridden(changes, overrides), "pretrain")


def _not_overridden(changes: dict, overrides: dict) -> dict:
    """``changes`` without what ``overrides`` set, in a method's section too (``{section: {name: value}}``)."""
    out = {}
    for k, v in changes.items():
        if k not in overrides:
            out[k] = v
        elif isinstance(v, dict) and isinstance(overrides[k], dict):
            out[k] = _not_overridden(v, overrides[k])
    return out


@dataclasses.dataclass
class Trainer:
    """Everything a training step needs, and the run's position (step, epoch, batch in the epoch)."""

    cfg: PretrainConfig
    model: SSLMethod
    ddp: torch.nn.Module
    opt: torch.optim.Optimizer
    aug: MammoAugment
    dev: torch.device
    out: Path
    base_lr: float
    schedule: Schedule
    profile: str
    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0
    best_val: float = math.inf
    #: seconds of this process's first step (compilation included), measured with a device sync
    first_step_s: float | None = None

    @property
    def method(self) -> str:
        return self.model.name

    @property
    def total(self) -> int:
        return self.schedule.total

    @property
    def amp(self):
        if self.dev.type == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return torch.autocast("cpu", enabled=False)

    def state_dict(self, resumable: bool = True) -> dict:
        """The checkpoint: weights and metadata, and with ``resumable`` the optimiser state too."""
        state = {"method": self.method, "encoder": self.cfg.encoder, "profile": self.profile,
                 "model": self.model.state_dict(), "step": self.step,
                 "epoch": self.epoch, "batch_in_epoch": self.batch_in_epoch, "best_val": self.best_val,
                 "config": json.loads(json.dumps(dataclasses.asdict(self.cfg)))}
        if resumable:
            state["optimizer"] = self.opt.state_dict()
        return state

    def load(self, path: Path) -> None:
        state = checkpoint.load(path, method=self.method, encoder=self.cfg.encoder)
        self.model.load_state_dict(state["model"])
        self.opt.load_state_dict(state["optimizer"])
        self.step, self.epoch = state["step"], state["epoch"]
        self.batch_in_epoch, self.best_val = state["batch_in_epoch"], state["best_val"]

    def save(self, name: str = "last.pt", **extra) -> None:
        """``last.pt`` is the resumable state; every other checkpoint (``best.pt``, ``epoch_N.pt``) is a model to
        evaluate and holds no optimiser state."""
        if D.is_main():
            checkpoint.save(self.out / name, {**self.state_dict(resumable=name == "last.pt"), **extra})

    def save_last(self) -> None:
        self.save()
        D.barrier()


def train_one_epoch(t: Trainer, train_ds, log: RunLog, limit: int, bar, on_step=None) -> dict:
    """Train from ``t.batch_in_epoch`` to the end of the epoch (or to step ``limit``): learning rate set every
    step (warm-up then cosine), two augmented views, loss, optimiser step, the method's after-step update (BYOL's
    EMA), and a checkpoint every ``checkpoint_every`` steps. Returns ``{"steps", "images_per_s"}``."""
    cfg, gb = t.cfg, t.cfg.batch_size
    g = torch.Generator(device=t.dev)
    t.model.train()
    batches = loader(train_ds, gb, cfg.seed, t.epoch, t.batch_in_epoch, cfg.num_workers, t.dev.type == "cuda")
    t0, seen, steps = time.perf_counter(), 0, 0
    for x in batches:
        first = t.first_step_s is None
        if first:
            _sync(t.dev)
            t_first = time.perf_counter()
        seed = _step_seed(cfg.seed, t.step, D.rank())
        torch.manual_seed(seed)
        g.manual_seed(seed)
        x = x.to(t.dev, non_blocking=True)
        lr = t.base_lr * cosine_warmup_schedule(t.step, max(t.total, 1), 1.0, 0.0, t.schedule.warmup, 0.0)
        for group in t.opt.param_groups:
            group["lr"] = lr
        # augmentations in fp32 (blur, sharpen and high-pass lose detail at bf16's 8-bit mantissa), the model in AMP
        views = [t.aug(x, g), t.aug(x, g)] if t.model.uses_views else [x.expand(-1, 3, -1, -1)]
        if t.dev.type == "cuda":
            views = [v.contiguous(memory_format=torch.channels_last) for v in views]
        with t.amp:
            loss = t.ddp(views, t.step).float().mean()
        t.opt.zero_grad(set_to_none=True)
        loss.backward()
        t.model.before_optimizer_step(t.step)
        t.opt.step()
        t.model.after_step(t.step, t.total)
        if first:
            _sync(t.dev)
            t.first_step_s = time.perf_counter() - t_first
            t0 = time.perf_counter()  # the steady-state rate excludes the first step
            if not bar.disable:
                bar.write(f"[pretrain] first step {t.first_step_s:.1f} s ("
                          f"{'compilation included' if compile_mode(cfg, t.dev) else 'eager'}); the rate below is "
                          f"the steady state")
        log.add(t.step, t.epoch, loss, lr)
        t.step += 1
        t.batch_in_epoch += 1
        seen += 0 if first else gb
        steps += 1
        bar.update()
        if on_step is not None:
            on_step(t.step)
        if t.step % cfg.log_every == 0:
            log.flush(seen / max(time.perf_counter() - t0, 1e-9))
            bar.set_postfix(loss=f"{log.last_loss:.4f}")
        if t.step % cfg.checkpoint_every == 0:
            log.flush()
            t.save_last()
        if t.step >= limit:
            break
    ips = seen / max(time.perf_counter() - t0, 1e-9)
    log.flush(ips)
    return {"steps": steps, "images_per_s": ips}


def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def compile_mode(cfg: PretrainConfig, dev: torch.device) -> str | None:
    """The torch.compile mode of a run, or None for eager: ``cfg.compile`` with "auto" meaning the default mode on
    CUDA and eager elsewhere."""
    mode = cfg.compile
    if mode == "auto":
        return "default" if dev.type == "cuda" else None
    if mode in ("off", "none", "", None):
        return None
    modes = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
    if mode not in modes:
        raise ValueError(f"compile={mode!r}: use 'auto', 'off' or one of {modes}")
    return mode


def fitting_batch(cfg: PretrainConfig, dev: torch.device, world: int, input_size: int) -> int:
    """The global batch of a run: ``cfg.batch_size``, unless its share per GPU exceeds what
    ``cfg.batch_per_gpu_by_memory`` allows on this card (given for 96 px inputs, scaled by the pixel count for
    others); then the largest batch that fits times ``world``. The learning rate follows the batch by the linear rule
    (:meth:`SSLMethod.build_optimizer <mammossl_core.ssl.base.SSLMethod.build_optimizer>`). CPUs are not capped."""
    if dev.type != "cuda" or not cfg.batch_per_gpu_by_memory:
        return cfg.batch_size
    gib = torch.cuda.get_device_properties(dev).total_memory / 2**30
    table = sorted(cfg.batch_per_gpu_by_memory.items())
    # a card sold as 80 GB shows ~79 GiB
    cap = max([b for m, b in table if 0.95 * m <= gib] or [table[0][1]])
    cap = max(1, int(cap * (96 / input_size) ** 2))
    if cfg.batch_size // world <= cap:
        return cfg.batch_size
    return cap * world


def _setup(method: str, data, out: Path, prof: Profile, overrides: dict, device) -> tuple[Trainer, object, object]:
    """Data, model, optimiser, augmentation and DDP wrapper of a run: a :class:`Trainer` at step 0, and the training
    and validation sets."""
    cfg = method_config(method, prof, overrides)
    dev = D.setup(device)
    world = D.world_size()
    cls = METHODS[method]
    size = cls.input_size(cfg, prof)
    asked = cfg.batch_size
    cfg = dataclasses.replace(cfg, batch_size=fitting_batch(cfg, dev, world, size))
    gb = cfg.batch_size
    if gb % world:
        raise ValueError(f"batch_size={gb} is not divisible by the {world} processes")
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)
    if dev.type == "cpu":
        torch.use_deterministic_algorithms(True, warn_only=True)
    train_ds = build_dataset(prof, cfg, data, cls, "train")
    val_ds = build_dataset(prof, cfg, data, cls, "val")
    steps_per_epoch = len(train_ds) // gb
    if steps_per_epoch == 0:
        raise ValueError(f"the training set has {len(train_ds)} samples, fewer than one batch of {gb}; "
                         f"lower --batch-size or add data")
    total = cfg.epochs * steps_per_epoch
    warmup = min(int(round(cfg.warmup_fraction * total)), total)
    model = build_method(method, cfg).to(dev)
    schedule = Schedule(steps_per_epoch, total, warmup)
    model.configure(schedule)
    model = D.convert_sync_batchnorm(model, dev)
    if dev.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    mode = compile_mode(cfg, dev)
    if mode is not None:
        model.compile_encoders(mode)
    opt, base_lr = model.build_optimizer(gb)
    ddp = D.wrap_ddp(model, dev)
    aug = MammoAugment(cfg.augment, size=size)
    t = Trainer(cfg, model, ddp, opt, aug, dev, out, base_lr, schedule, prof.name)
    if D.is_main():
        write_json(out / "config.json", {"method": method, "data": str(data), "profile": prof.name,
                                         "world_size": world, "global_batch": gb, "lr": base_lr,
                                         "batch_reduced_from": asked if asked != gb else None,
                                         "compile": mode or "off",
                                         "steps_per_epoch": steps_per_epoch, "total_steps": total,
                                         "pretrain": dataclasses.asdict(cfg), "data_config": dataclasses.asdict(prof.data)})
    return t, train_ds, val_ds


def pretrain(
    method: str,
    data: str | os.PathLike,
    out: str | os.PathLike,
    profile: str | Profile | None = None,
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
    prof = resolve(profile, pretrain=overrides)
    out = Path(out)
    t, train_ds, val_ds = _setup(method, data, out, prof, overrides, device)
    cfg = t.cfg
    resuming = resume and (out / "last.pt").is_file()
    if resuming:
        t.load(out / "last.pt")
    elif D.is_main():  # the starting weights, to measure how far pretraining moved each layer
        checkpoint.save(out / "init.pt", {"model": t.model.backbone.state_dict(), "method": t.model.starting_state()})
    log = RunLog(out, method, t.step, resuming)
    if progress and D.is_main():
        print(f"[pretrain] {method} on {len(train_ds)} samples, {D.world_size()} process(es), global batch "
              f"{cfg.batch_size}, lr {t.base_lr:.4g}, {t.schedule.steps_per_epoch} steps/epoch, {t.total} steps",
              flush=True)
    limit = cfg.max_steps if cfg.max_steps is not None else t.total
    bar = tqdm(total=min(limit, t.total), initial=t.step, desc=f"pretrain {method}", unit="step",
               disable=not (progress and D.is_main()))
    try:
        while t.epoch < cfg.epochs and t.step < limit:
            train_one_epoch(t, train_ds, log, limit, bar, on_step)
            if t.batch_in_epoch >= t.schedule.steps_per_epoch:  # epoch finished: validation loss and model selection
                val = validation_loss(t.model, val_ds, t.aug, cfg.batch_size, cfg, t.dev, t.amp)
                log.validation(t.step, t.epoch, val)
                t.epoch, t.batch_in_epoch = t.epoch + 1, 0
                improved = val < t.best_val
                t.best_val = min(t.best_val, val)
                t.save_last()
                if improved:
                    t.save("best.pt")
                if cfg.keep_epoch_checkpoints:
                    t.save(f"epoch_{t.epoch - 1:03d}.pt", val_loss=val)
        t.save_last()
    finally:
        bar.close()
        log.close()
    if D.is_main() and not (out / "best.pt").is_file():
        t.save("best.pt")  # stopped before the first epoch ended
    summary = {"method": method, "profile": prof.name, "steps": t.step, "epochs_done": t.epoch,
               "last_loss": log.last_loss, "best_val_loss": t.best_val, "run_dir": str(out),
               "first_step_s": t.first_step_s}
    if D.is_main():
        init = checkpoint.load(out / "init.pt") if (out / "init.pt").is_file() else None
        if init is not None:
            summary["weight_change"] = weight_change(init["model"], {k: v.cpu() for k, v in
                                                                     t.model.backbone.state_dict().items()})
        summary.update(t.model.summary_stats(clean_batches(val_ds if len(val_ds) else train_ds, t.aug.size, t.dev),
                                             init.get("method") if init is not None else None))
        write_json(out / "summary.json", summary)
    return summary


def drop_resume_state(run_dir: str | os.PathLike) -> list[Path]:
    """Delete what only resuming a run needs (``last.pt``, ``init.pt``) once its ``summary.json`` and ``best.pt``
    are written; the selected model, the logs and the summary stay. Returns the deleted paths.

    >>> drop_resume_state("runs/byol")  # doctest: +SKIP
    """
    run = Path(run_dir)
    if not ((run / "summary.json").is_file() and (run / "best.pt").is_file()):
        raise FileNotFoundError(f"{run}: not a finished run (summary.json and best.pt are both needed)")
    gone = [run / n for n in ("last.pt", "init.pt") if (run / n).is_file()]
    for f in gone:
        f.unlink()
    return gone


def weight_change(before: dict, after: dict) -> dict[str, float]:
    """Relative change ``||w - w0|| / ||w0||`` of every convolution and linear weight (tensors of 2+ dimensions)."""
    return {k: float((after[k].float() - w0.float()).norm() / w0.float().norm().clamp_min(1e-12))
            for k, w0 in before.items() if w0.dim() >= 2 and k in after}


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
    for k, idx in enumerate(GlobalBatches(len(ds), b, cfg.seed, 0, 0, shuffle=False)):
        if k >= cfg.val_batches:
            break
        g.manual_seed(cfg.seed + 10_000 + k)
        torch.manual_seed(cfg.seed + 10_000 + k)
        x = ds[idx].to(dev)
        views = [aug(x, g), aug(x, g)] if model.uses_views else [x.expand(-1, 3, -1, -1)]
        with amp:
            losses.append(float(model(views, 0).float().mean()))
    model.train()
    return float(D.all_reduce_mean(torch.tensor(float(np.mean(losses)))))


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Arguments shared by ``mammossl pretrain`` and ``torchrun -m mammossl_core.pretrain``."""
    p.add_argument("--method", required=True, choices=sorted(METHODS))
    p.add_argument("--data", required=True, help="prepared dataset directory")
    p.add_argument("--out", required=True, help="run directory (checkpoints, logs)")
    p.add_argument("--profile", choices=sorted(PROFILES), default=None,
                   help="size/hyperparameter profile (default: the checkpoint's when resuming, else tiny)")
    p.add_argument("--profile-file", default=None, metavar="JSON",
                   help="a resolved profile and its pretraining overrides, as written by mammossl_core.launch "
                        "(instead of --profile and the options below)")
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
    p.add_argument("--compile", default=None, metavar="MODE",
                   help="torch.compile the encoders: auto (GPU only, the default), off, default, reduce-overhead, "
                        "max-autotune-no-cudagraphs")
    p.add_argument("--device", default=None, help="cpu, cuda (default: cuda if available)")
    p.add_argument("--resume", action="store_true", help="continue from RUN_DIR/last.pt")
    p.add_argument("--keep-epoch-checkpoints", action="store_true", default=None,
                   help="also keep epoch_N.pt of every epoch (for `mammossl analyse selection`)")


def run_from_args(a: argparse.Namespace) -> dict:
    names = ["encoder", "epochs", "batch_size", "lr", "augment", "source", "max_steps", "checkpoint_every",
             "num_workers", "seed", "keep_epoch_checkpoints", "compile"]
    overrides = {n: getattr(a, n) for n in names if getattr(a, n) is not None}
    last = Path(a.out) / "last.pt"
    profile = a.profile or (profile_of(last) if a.resume and last.is_file() else None)
    if a.profile_file:
        spec = json.loads(Path(a.profile_file).read_text())
        profile, overrides = from_dict(spec["profile"]), {**spec["overrides"], **overrides}
    try:
        return pretrain(a.method, a.data, a.out, profile, resume=a.resume, device=a.device, **overrides)
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
