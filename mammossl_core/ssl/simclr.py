"""SimCLR (paper II.A, V.B): NT-Xent between two views, negatives from the global batch across GPUs."""
from __future__ import annotations

from lightly.loss import NTXentLoss
from lightly.models.modules import SimCLRProjectionHead

from .base import SSLMethod


class SimCLR(SSLMethod):
    """Backbone + SimCLR projection head + lightly's NT-Xent (temperature 0.5, gathered over processes).

    Reference: Chen et al., "A Simple Framework for Contrastive Learning of Visual Representations", 2020.
    """

    name = "simclr"

    def __init__(self, cfg, encoder=None):
        super().__init__(cfg, encoder)
        self.head = SimCLRProjectionHead(self.backbone.dim, cfg.hidden_dim, cfg.projection_dim)
        self.criterion = NTXentLoss(temperature=cfg.simclr.temperature, gather_distributed=True)

    def forward(self, views, step=0):
        z0, z1 = (self.head(self.backbone(v)) for v in views)
        return self.criterion(z0, z1)
