"""The shared base of the SSL methods (paper section II.A): an encoder, heads and a lightly loss, composed.

A method maps a list of augmented views to a scalar loss (:meth:`SSLMethod.forward`) and may update internal
state after the optimiser step (:meth:`SSLMethod.after_step`, e.g. BYOL's momentum encoder). The trainer in
:mod:`mammossl_core.pretrain` owns everything else (data, augmentation, optimiser, DDP, checkpoints).

After pretraining a method hands out the two encoders that evaluation uses: :meth:`SSLMethod.grid_encoder`
(whole images to a grid of embeddings, paper II.B) and :meth:`SSLMethod.patch_encoder` (a patch to one embedding,
paper IV). Methods whose encoder is not a CNN trunk (ViT-MAE) override both.
"""
from __future__ import annotations

import torch
from torch import nn

from ..config import PretrainConfig
from ..encoders import Backbone


class SSLMethod(nn.Module):
    """Base class: ``self.backbone`` is the encoder kept after pretraining."""

    name: str = "base"
    #: whether the trainer feeds two augmented views of tiled patches (False: whole images, no augmentation)
    uses_views: bool = True

    def __init__(self, cfg: PretrainConfig, encoder: str | None = None):
        super().__init__()
        self.cfg = cfg
        self.backbone = Backbone(encoder or cfg.encoder)

    def forward(self, views: list[torch.Tensor], step: int = 0) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def configure(self, steps_per_epoch: int) -> None:
        """Called once by the trainer with the length of an epoch (methods with per-epoch schedules use it)."""

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
