"""SwAV (paper II.A, V.B): swapped prediction of Sinkhorn codes over learned prototypes, with a feature queue."""
from __future__ import annotations

import math
import warnings

import torch
import torch.nn.functional as F
from lightly.loss import SwaVLoss
from lightly.models.modules import SwaVProjectionHead, SwaVPrototypes
from torch import nn

from .. import distributed as D
from .base import Schedule, SSLMethod


class Prototypes(SwaVPrototypes):
    """lightly's prototypes (one head, re-normalised onto the unit sphere each step) without a bias.

    lightly 1.6's heads are ``nn.Linear`` with the default bias; the reference (facebookresearch/swav
    ``src/resnet50.py``: ``nn.Linear(output_dim, nmb_prototypes, bias=False)``) and solo-learn have none. A bias adds
    straight into the scores, so they leave the unit interval that the temperature 0.1 and Sinkhorn's epsilon 0.05
    are tuned for, and the optimiser trains it without LARS's adaptation (a bias has weight decay 0): at SwAV's
    learning rates it grows until ``exp(score / epsilon)`` underflows for a whole batch and Sinkhorn divides 0 by 0.
    Without it every score is a cosine, within [-1, 1].

    >>> p = Prototypes(8, 5)
    >>> [n for n, _ in p.named_parameters()]
    ['heads.0.weight']
    """

    def __init__(self, input_dim: int, n_prototypes: int):
        super().__init__(input_dim, n_prototypes)
        self.heads = nn.ModuleList([nn.Linear(input_dim, n, bias=False) for n in self.n_prototypes])


def _drop_prototype_bias(module, state_dict, prefix, *args) -> None:
    """Checkpoints written before the prototypes lost their bias still load: the bias is dropped, with a warning
    (the backbone, which evaluation uses, is unaffected; prototype assignments move slightly)."""
    old = [k for k in state_dict if k.startswith(prefix + "prototypes.heads.") and k.endswith(".bias")]
    for k in old:
        del state_dict[k]
    if old:
        warnings.warn("this SwAV checkpoint has prototypes with a bias (written by mammossl < 0.5); the bias is "
                      "dropped. Pretrain again for prototype assignments of the current model.", stacklevel=2)


class SwAV(SSLMethod):
    """Backbone + projection + bias-free prototypes + lightly's SwaV loss (temperature 0.1, Sinkhorn epsilon 0.05,
    Sinkhorn over the global batch). 20 prototypes and a queue of 3000 for tiled patches (paper V.B).

    Schedule (:meth:`configure`), chosen after the reference (Caron et al.'s ``main_swav.py``):

    * the prototypes stay fixed for the first ``swav.freeze_share_of_warmup`` of the warm-up steps, at least one
      step: the reference freezes 313 of its 3,130 warm-up steps at batch 4096 (one epoch of ten). Counted in
      steps of the schedule, so every profile unfreezes them early, whatever its number of epochs;
    * the queue joins the Sinkhorn problem after ``swav.queue_start_fraction`` of the run (once full): the
      reference starts it at epoch 15 of 200 at batch 256, when the features it holds have stopped moving fast
      (at 4096 it uses none; the paper states a queue of 3000, so it is kept).

    The queue is a persistent buffer (saved in checkpoints, so resume is exact) holding the latest projections of
    each view. As in the reference, each of ``W`` processes keeps ``swav.queue_length / W`` rows of its own
    projections, so the queue over all processes holds the latest ``swav.queue_length`` projections of the global
    batch whatever ``W`` is, and Sinkhorn (gathered over processes) sees the same problem as one process would.

    Reference: Caron et al., "Unsupervised Learning of Visual Features by Contrasting Cluster Assignments", 2020.
    """

    name = "swav"

    @classmethod
    def config_changes(cls, cfg, prof):
        """On the annotated patch set (IV.B) the paper's 50 prototypes and queue of 300."""
        if cfg.source == "annotated":
            return {"swav": {"prototypes": cfg.swav.prototypes_annotated,
                             "queue_length": cfg.swav.queue_length_annotated}}
        return {}

    def __init__(self, cfg, encoder=None):
        super().__init__(cfg, encoder)
        self.projection = SwaVProjectionHead(self.backbone.dim, cfg.hidden_dim, cfg.projection_dim)
        self.prototypes = Prototypes(cfg.projection_dim, cfg.swav.prototypes)
        self.criterion = SwaVLoss(temperature=cfg.swav.temperature, sinkhorn_epsilon=cfg.swav.sinkhorn_epsilon,
                                  sinkhorn_gather_distributed=True)
        self.register_buffer("queue", torch.zeros(2, cfg.swav.queue_length, cfg.projection_dim))
        self.register_buffer("queue_filled", torch.zeros((), dtype=torch.long))
        self.register_load_state_dict_pre_hook(_drop_prototype_bias)
        self.frozen_steps = 0
        self.queue_start = 0
        self.queue_rows = cfg.swav.queue_length // D.world_size()
        self._queue_full = False  # a host-side copy of "queue_filled >= rows", so a step needs no device sync

    def configure(self, schedule: Schedule) -> None:
        self.frozen_steps = max(1, math.ceil(self.cfg.swav.freeze_share_of_warmup * schedule.warmup))
        self.queue_start = int(round(self.cfg.swav.queue_start_fraction * schedule.total))
        self.queue_rows = self.cfg.swav.queue_length // D.world_size()
        self._queue_full = False

    def before_optimizer_step(self, step: int) -> None:
        """Prototypes stay fixed during the first ``frozen_steps`` (Caron et al.): their gradients are dropped before
        the optimiser step, as in the reference. (lightly's ``SwaVPrototypes`` freezes them by toggling
        ``requires_grad``, which a DDP model with ``static_graph=True`` does not allow.)"""
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
        if L > 0 and step >= self.queue_start and self.queue_is_full():
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
        return z, torch.softmax(self.prototypes(z) / self.cfg.swav.temperature, dim=1)

    def starting_state(self) -> dict:
        return {"prototypes": self.prototypes.heads[0].weight.detach().cpu().clone()}

    @torch.no_grad()
    def summary_stats(self, batches, init_state: dict | None = None) -> dict:
        """Whether the prototypes learned: the entropy of the mean soft assignment over ``batches`` (nats; its
        maximum is ln P when every prototype is used equally), how many prototypes are the hard assignment of at
        least 1% of the patches, and the prototype layer's relative weight change since ``init_state``."""
        was = self.training
        self.eval()
        q = torch.cat([self.assign(x)[1].float().cpu() for x in batches])
        self.train(was)
        mean = q.mean(0)
        share = torch.bincount(q.argmax(1), minlength=q.shape[1]).float() / len(q)
        stats = {"prototypes": int(q.shape[1]), "prototype_patches": int(len(q)),
                 "prototype_entropy": float(-(mean * mean.clamp_min(1e-12).log()).sum()),
                 "prototype_entropy_max": math.log(q.shape[1]),
                 "prototypes_used": int((share >= 0.01).sum())}
        if init_state and "prototypes" in init_state:
            # the prototypes are re-normalised at every forward pass: compare directions
            w0 = F.normalize(init_state["prototypes"].float(), dim=1)
            w = F.normalize(self.prototypes.heads[0].weight.detach().float().cpu(), dim=1)
            stats["prototype_weight_change"] = float((w - w0).norm() / w0.norm().clamp_min(1e-12))
        return stats
