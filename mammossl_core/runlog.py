"""The log of a pretraining run: ``log.csv`` and TensorBoard events (main process only), with the losses checked
for NaN every ``log_every`` steps so that the device syncs once per flush."""
from __future__ import annotations

import csv
import math
import time
from pathlib import Path

import torch
from torch.utils.tensorboard import SummaryWriter

from . import distributed as D

LOG_FIELDS = ["step", "epoch", "loss", "val_loss", "lr", "images_per_s", "time"]


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or infinite."""


class RunLog:
    """``log.csv`` and TensorBoard events of a run (main process only), and the losses of the steps since the
    last :meth:`flush`: checked and written every ``log_every`` steps, so the device syncs once per flush."""

    def __init__(self, out: Path, method: str, step: int, resume: bool):
        self.path, self.method, self.out = out / "log.csv", method, out
        self.main = D.is_main()
        self.pending: list[tuple] = []
        self.last_loss = float("nan")
        if self.main and resume:
            self._truncate(step)
        elif self.main and self.path.exists():
            self.path.unlink()
        self.writer = SummaryWriter(str(out / "tb"), purge_step=step) if self.main else None

    def _row(self, row: dict) -> None:
        new = not self.path.exists()
        with open(self.path, "a", newline="") as f:
            w = csv.DictWriter(f, fieldnames=LOG_FIELDS)
            if new:
                w.writeheader()
            w.writerow({k: row.get(k, "") for k in LOG_FIELDS})

    def _truncate(self, step: int) -> None:
        """Drop rows written after ``step`` (by a run that was killed after its last checkpoint)."""
        if not self.path.exists():
            return
        with open(self.path) as f:
            rows = [r for r in csv.DictReader(f) if int(r["step"]) <= step]
        with open(self.path, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=LOG_FIELDS)
            w.writeheader()
            w.writerows(rows)

    def add(self, step: int, epoch: int, loss: torch.Tensor, lr: float) -> None:
        self.pending.append((step, epoch, loss.detach(), lr))

    def flush(self, ips: float | None = None) -> float:
        """Check and log the pending losses; raises :class:`NonFiniteLossError` on a NaN or infinite one. Runs
        before every checkpoint, so a checkpoint never holds weights updated by a non-finite loss."""
        if not self.pending:
            return self.last_loss
        vals = torch.stack([p[2].float() for p in self.pending])
        if D.is_dist():
            torch.distributed.all_reduce(vals)
            vals = vals / D.world_size()
        vals = vals.cpu().tolist()
        items, self.pending = self.pending, []
        for (s, e, _, lr), v in zip(items, vals):
            if not math.isfinite(v):
                raise NonFiniteLossError(
                    f"{self.method}: non-finite loss at step {s} (epoch {e}); the run stopped and the last good "
                    f"checkpoint {self.out / 'last.pt'} is kept. Lower the learning rate (lr={lr:.3g}) or check the data.")
            if self.main:
                self._row({"step": s + 1, "epoch": e, "loss": f"{v:.6f}", "lr": f"{lr:.6g}",
                           "images_per_s": f"{ips:.1f}" if ips else "", "time": f"{time.time():.1f}"})
        self.last_loss = vals[-1]
        if self.main:
            s1 = items[-1][0] + 1
            self.writer.add_scalar("train/loss", self.last_loss, s1)
            self.writer.add_scalar("train/lr", items[-1][3], s1)
            if ips:
                self.writer.add_scalar("train/images_per_s", ips, s1)
        return self.last_loss

    def validation(self, step: int, epoch: int, val: float) -> None:
        if self.main:
            self._row({"step": step, "epoch": epoch, "val_loss": f"{val:.6f}", "time": f"{time.time():.1f}"})
            self.writer.add_scalar("val/loss", val, step)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
