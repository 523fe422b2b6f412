"""BYOL (paper II.A, V.B): an online network predicts a momentum (EMA 0.99 -> 1) target network's projection."""
from __future__ import annotations

import copy

import torch
from lightly.loss import NegativeCosineSimilarity
from lightly.models.modules import BYOLPredictionHead, BYOLProjectionHead
from lightly.models.utils import deactivate_requires_grad, update_momentum
from lightly.utils.scheduler import cosine_schedule

from .base import SSLMethod


class BYOL(SSLMethod):
    """Online backbone/projection/prediction, momentum target backbone/projection, symmetric cosine loss.

    Reference: Grill et al., "Bootstrap your own latent", 2020.
    """

    name = "byol"

    def __init__(self, cfg, encoder=None):
        super().__init__(cfg, encoder)
        self.projection = BYOLProjectionHead(self.backbone.dim, cfg.hidden_dim, cfg.projection_dim)
        self.prediction = BYOLPredictionHead(cfg.projection_dim, cfg.hidden_dim, cfg.projection_dim)
        self.backbone_momentum = copy.deepcopy(self.backbone)
        self.projection_momentum = copy.deepcopy(self.projection)
        deactivate_requires_grad(self.backbone_momentum)
        deactivate_requires_grad(self.projection_momentum)
        self.criterion = NegativeCosineSimilarity()

    def forward(self, views, step=0):
        v0, v1 = views
        p0 = self.prediction(self.projection(self.backbone(v0)))
        p1 = self.prediction(self.projection(self.backbone(v1)))
        with torch.no_grad():
            t0 = self.projection_momentum(self.backbone_momentum(v0))
            t1 = self.projection_momentum(self.backbone_momentum(v1))
        return 0.5 * (self.criterion(p0, t1) + self.criterion(p1, t0))

    @torch.no_grad()
    def after_step(self, step, total_steps):
        m = cosine_schedule(step, max(total_steps, 1), self.cfg.byol.momentum, 1.0)
        update_momentum(self.backbone, self.backbone_momentum, m)
        update_momentum(self.projection, self.projection_momentum, m)
