"""The shared base of the SSL methods (paper section II.A): an encoder, heads and a lightly loss, composed.

A method maps a list of augmented views to a scalar loss (:meth:`SSLMethod.forward`) and may update internal
state after the optimiser step (:meth:`SSLMethod.after_step`, e.g. BYOL's momentum encoder). The trainer in
:mod:`mammossl_core.pretrain` owns everything else (data, augmentation, optimiser, DDP, checkpoints).

After pretraining a method hands out the two encoders that evaluation uses: :meth:`SSLMethod.grid_encoder`
(whole images to a grid of embeddings, paper II.B) and :meth:`SSLMethod.patch_encoder` (a patch to one embedding,
paper IV). Methods whose encoder is not a CNN trunk (ViT-MAE) override both.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from lightly.models.utils import get_weight_decay_parameters
from torch import nn

from ..config import PretrainConfig, Profile
from ..encoders import Backbone
from ..lars import ForeachLARS


@dataclass(frozen=True)
class Schedule:
    """The step counts of a run, handed to :meth:`SSLMethod.configure` by the trainer."""

    steps_per_epoch: int
    #: optimiser steps of the whole run (``epochs * steps_per_epoch``)
    total: int
    #: steps of the linear learning-rate warm-up
    warmup: int


class SSLMethod(nn.Module):
    """Base class: ``self.backbone`` is the encoder kept after pretraining."""

    name: str = "base"
    #: whether the trainer feeds two augmented views of tiled patches (False: whole images, no augmentation)
    uses_views: bool = True
    #: whether it pretrains on whole images instead of tiled patches (ViT-MAE, paper V.B)
    whole_images: bool = False

    @classmethod
    def config_changes(cls, cfg: PretrainConfig, prof: Profile) -> dict:
        """The method's own choices of ``cfg`` fields at ``prof`` (e.g. SwAV's prototypes on the annotated set);
        explicit overrides of the caller win over them (:func:`mammossl_core.pretrain.method_config`)."""
        return {}

    @classmethod
    def input_size(cls, cfg: PretrainConfig, prof: Profile) -> int:
        """Side of the square inputs the method is trained on: the annotated patch or the tile."""
        return prof.data.annotated_patch if cfg.source == "annotated" else prof.data.tile_size

    def build_optimizer(self, global_batch: int) -> tuple[torch.optim.Optimizer, float]:
        """LARS (paper V.A) at ``lr * global_batch / lr_reference_batch`` (the linear scaling rule) with two groups:
        weights (convolutions, linear layers, SwAV's prototypes) get weight decay and LARS's layer-wise
        adaptation; biases and normalisation parameters get neither (paper V.A; lightly's LARS leaves a group of
        weight decay 0 unadapted), so they move by plain momentum SGD at the full rate. That is safe only for
        parameters whose effect is normalised away downstream: nothing that adds straight into a loss's logits
        may sit in that group (the reason SwAV's prototypes have no bias). Returns the optimiser and its rate."""
        cfg = self.cfg
        lr = cfg.lr * global_batch / cfg.lr_reference_batch
        return ForeachLARS(self.parameter_groups(cfg.weight_decay), lr=lr, momentum=cfg.momentum), lr

    def parameter_groups(self, weight_decay: float) -> list[dict]:
        """The trained parameters in two optimiser groups: weights with ``weight_decay``, biases and normalisation
        parameters without (lightly's split)."""
        decay, no_decay = get_weight_decay_parameters([self])
        return [{"params": [p for p in decay if p.requires_grad], "weight_decay": weight_decay},
                {"params": [p for p in no_decay if p.requires_grad], "weight_decay": 0.0}]

    def __init__(self, cfg: PretrainConfig, encoder: str | None = None):
        super().__init__()
        self.cfg = cfg
        self.backbone = Backbone(encoder or cfg.encoder)

    def forward(self, views: list[torch.Tensor], step: int = 0) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def configure(self, schedule: Schedule) -> None:
        """Called once by the trainer with the run's step counts (methods with their own schedules use them)."""

    def starting_state(self) -> dict:
        """What :meth:`summary_stats` compares the trained model with, taken before training (kept in ``init.pt``)."""
        return {}

    @torch.no_grad()
    def summary_stats(self, batches, init_state: dict | None = None) -> dict:
        """Method-specific figures for the run's ``summary.json``, computed in eval mode on clean validation
        ``batches`` ``(B, 3, p, p)`` after training; ``init_state`` is :meth:`starting_state` of the untrained
        model."""
        return {}

    def compiled_modules(self) -> list[nn.Module]:
        """The modules :meth:`compile_encoders` compiles: the method's encoders (its :class:`Backbone` modules,
        BYOL's momentum copy included). Heads and losses stay eager: they are a few small kernels."""
        return [m for m in self.modules() if isinstance(m, Backbone)]

    def compile_encoders(self, mode: str) -> None:
        """``torch.compile`` every module of :meth:`compiled_modules` in place (``nn.Module.compile``), so the
        state-dict keys, checkpoints and DDP wrapping are unchanged. ``mode`` is a torch.compile mode."""
        for m in self.compiled_modules():
            m.compile(mode=mode)

    def before_optimizer_step(self, step: int) -> None:
        """Called between the backward pass and the optimiser step (e.g. to hold some parameters fixed)."""

    @torch.no_grad()
    def after_step(self, step: int, total_steps: int) -> None:
        """Called after each optimiser step."""

    def grid_encoder(self) -> tuple[nn.Module, int]:
        """``(B, 3, H, W) -> (B, m, r, c)`` and ``m``: the fully-convolutional trunk (paper II.B)."""
        return self.backbone.trunk, self.backbone.dim

    def patch_encoder(self) -> nn.Module:
        """``(B, 3, p, p) -> (B, m)``: the pooled backbone, as during pretraining (Table 1)."""
        return self.backbone
