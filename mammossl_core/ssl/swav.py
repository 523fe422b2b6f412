"""SwAV (paper II.A, V.B): swapped prediction of Sinkhorn codes over learned prototypes, with a feature queue."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from lightly.loss import SwaVLoss
from lightly.models.modules import SwaVProjectionHead, SwaVPrototypes

from .. import distributed as D
from .base import SSLMethod


class SwAV(SSLMethod):
    """Backbone + projection + lightly's prototypes and SwaV loss (temperature 0.1, Sinkhorn epsilon 0.05,
    Sinkhorn over the global batch). 20 prototypes and a queue of 3000 for tiled patches (paper V.B).

    The queue is a persistent buffer (saved in checkpoints, so resume is exact); it holds the latest projections
    of each view and joins the Sinkhorn problem once ``swav_queue_start_step`` steps have passed and it is full.
    As in the SwAV reference code, each of ``W`` processes keeps ``swav_queue_length / W`` rows of its own
    projections, so the queue over all processes holds the latest ``swav_queue_length`` projections of the global
    batch whatever ``W`` is, and Sinkhorn (gathered over processes) sees the same problem as one process would.

    Reference: Caron et al., "Unsupervised Learning of Visual Features by Contrasting Cluster Assignments", 2020.
    """

    name = "swav"

    def __init__(self, cfg, encoder=None):
        super().__init__(cfg, encoder)
        self.projection = SwaVProjectionHead(self.backbone.dim, cfg.hidden_dim, cfg.projection_dim)
        self.prototypes = SwaVPrototypes(cfg.projection_dim, cfg.swav_prototypes)
        self.criterion = SwaVLoss(temperature=cfg.swav_temperature, sinkhorn_epsilon=cfg.swav_sinkhorn_epsilon,
                                  sinkhorn_gather_distributed=True)
        self.register_buffer("queue", torch.zeros(2, cfg.swav_queue_length, cfg.projection_dim))
        self.register_buffer("queue_filled", torch.zeros((), dtype=torch.long))
        self.frozen_steps = 0
        self.queue_rows = cfg.swav_queue_length // D.world_size()
        self._queue_full = False  # a host-side copy of "queue_filled >= rows", so a step needs no device sync

    def configure(self, steps_per_epoch: int) -> None:
        self.frozen_steps = self.cfg.swav_freeze_prototypes_epochs * steps_per_epoch
        self.queue_rows = self.cfg.swav_queue_length // D.world_size()
        self._queue_full = False

    def before_optimizer_step(self, step: int) -> None:
        """Prototypes stay fixed during the first ``swav_freeze_prototypes_epochs`` (Caron et al.): their gradients
        are dropped before the optimiser step, as in the SwAV reference code. (lightly's ``SwaVPrototypes``
        freezes them by toggling ``requires_grad``, which a DDP model with ``static_graph=True`` does not allow.)"""
        if step < self.frozen_steps:
            for p in self.prototypes.parameters():
                p.grad = None

    def forward(self, views, step=0):
        self.prototypes.normalize()
        z = [F.normalize(self.projection(self.backbone(v)).float(), dim=1) for v in views]
        # prototype scores, Sinkhorn (exp of scores / 0.05) and the loss in fp32 also under bf16 autocast
        with torch.autocast(z[0].device.type, enabled=False):
            return self._loss(z, step)

    def _loss(self, z: list[torch.Tensor], step: int) -> torch.Tensor:
        logits = [self.prototypes(zi) for zi in z]
        queue_logits = None
        L = self.queue_rows
        if L > 0 and step >= self.cfg.swav_queue_start_step and self.queue_is_full():
            with torch.no_grad():
                queue_logits = [self.prototypes(self.queue[i, :L]) for i in range(len(z))]
        if L > 0 and self.training:
            with torch.no_grad():
                for i, zi in enumerate(z):
                    zi = zi.detach()[:L]
                    self.queue[i, :L] = torch.cat([zi, self.queue[i, : L - len(zi)]])
                self.queue_filled += len(z[0])
        return self.criterion(logits, [], queue_logits)

    def queue_is_full(self) -> bool:
        """Whether the queue holds ``queue_rows`` projections; reads the device counter only until it is full."""
        if not self._queue_full:
            self._queue_full = int(self.queue_filled) >= self.queue_rows
        return self._queue_full

    def assign(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalised projections ``(B, d)`` and soft prototype assignments ``(B, P)`` (softmax of the prototype
        scores over the temperature) of patches ``x`` ``(B, 3, p, p)`` (paper V.E)."""
        z = F.normalize(self.projection(self.backbone(x)), dim=1)
        return z, torch.softmax(self.prototypes(z) / self.cfg.swav_temperature, dim=1)
