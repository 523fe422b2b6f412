"""The shared base of the SSL methods (paper section II.A): an encoder, heads and a lightly loss, composed.

A method maps a list of augmented views to a scalar loss (:meth:`SSLMethod.forward`) and may update internal
state after the optimiser step (:meth:`SSLMethod.after_step`, e.g. BYOL's momentum encoder). The trainer in
:mod:`mammossl_core.pretrain` owns everything else (data, augmentation, optimiser, DDP, checkpoints).
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

    @torch.no_grad()
    def after_step(self, step: int, total_steps: int) -> None:
        """Called after each optimiser step."""

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Embedding used by downstream evaluation: the pooled backbone output."""
        return self.backbone(x)
