"""ViT-MAE (paper II.A, V.B): mask 75% of the patch tokens and reconstruct their pixels."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from lightly.models import utils
from lightly.models.modules import MAEDecoder, MaskedVisionTransformerTorchvision
from torch import nn
from torchvision.models.vision_transformer import VisionTransformer

from .base import SSLMethod


def build_vit(cfg) -> VisionTransformer:
    """A torchvision ViT of the configured size (ViT-B/16 at the paper profile; no weights downloaded)."""
    return VisionTransformer(image_size=cfg.mae.image_size, patch_size=cfg.mae.patch, num_layers=cfg.mae.layers,
                             num_heads=cfg.mae.heads, hidden_dim=cfg.mae.hidden, mlp_dim=cfg.mae.mlp)


class ViTGrid(nn.Module):
    """A ViT-MAE encoder as a grid encoder: the image resized to the ViT's square, its patch tokens (class token
    dropped) as the ``g x g`` grid, ``g = image_size / patch``."""

    def __init__(self, vit: MaskedVisionTransformerTorchvision, image_size: int, patch: int):
        super().__init__()
        self.vit, self.size, self.patch = vit, image_size, patch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", antialias=True)
        tokens = self.vit.encode(images=x)[:, 1:]
        g = self.size // self.patch
        return tokens.transpose(1, 2).reshape(len(x), -1, g, g)


class _MeanToken(nn.Module):
    """The mean patch token of :class:`ViTGrid`: ``(B, 3, p, p) -> (B, m)``."""

    def __init__(self, grid: ViTGrid):
        super().__init__()
        self.grid = grid

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.grid(x).mean((2, 3))


class MAE(SSLMethod):
    """lightly's masked ViT (torchvision) encoder + MAE decoder; loss: MSE on the masked patches' pixels.

    Images are resized to a square of ``mae.image_size`` pixels (ViT needs a fixed token grid).
    Reference: He et al., "Masked Autoencoders Are Scalable Vision Learners", 2021.
    """

    name = "mae"
    uses_views = False
    whole_images = True

    @classmethod
    def config_changes(cls, cfg, prof):
        """Its own batch size (V.B: 32); on the annotated set (Table 1) the ViT sees the patches at their size."""
        changes: dict = {"batch_size": cfg.mae.batch_size}
        if cfg.source == "annotated":
            changes["mae"] = {"image_size": prof.data.annotated_patch}
        return changes

    @classmethod
    def input_size(cls, cfg, prof):
        return cfg.mae.image_size

    def build_optimizer(self, global_batch):
        """AdamW (V.B: lr 0.0024, weight decay 0.05, He et al.'s betas), biases and norms free of weight decay;
        the rate is the paper's, not scaled with the batch."""
        opt = torch.optim.AdamW(self.parameter_groups(self.cfg.mae.weight_decay), lr=self.cfg.mae.lr, betas=(0.9, 0.95))
        return opt, self.cfg.mae.lr

    def __init__(self, cfg, encoder=None):
        nn.Module.__init__(self)
        self.cfg = cfg
        vit = build_vit(cfg)
        self.backbone = MaskedVisionTransformerTorchvision(vit=vit)
        self.backbone.dim = vit.hidden_dim
        self.patch = cfg.mae.patch
        self.seq_length = vit.seq_length
        self.decoder = MAEDecoder(seq_length=vit.seq_length, num_layers=cfg.mae.decoder_layers,
                                  num_heads=cfg.mae.decoder_heads, embed_input_dim=vit.hidden_dim,
                                  hidden_dim=cfg.mae.decoder_dim, mlp_dim=cfg.mae.decoder_dim * 4,
                                  out_dim=cfg.mae.patch**2 * 3)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, cfg.mae.decoder_dim))
        self.mask_ratio = cfg.mae.mask_ratio

    def forward(self, views, step=0):
        images = views[0]
        b = len(images)
        idx_keep, idx_mask = utils.random_token_mask(size=(b, self.seq_length), mask_ratio=self.mask_ratio,
                                                     device=images.device)
        x = self.backbone.encode(images=images, idx_keep=idx_keep)
        x = self.decoder.embed(x)
        x_masked = utils.repeat_token(self.mask_token, (b, self.seq_length))
        x_masked = utils.set_at_index(x_masked, idx_keep, x.type_as(x_masked))
        pred = self.decoder.predict(self.decoder.decode(x_masked))
        pred = utils.get_at_index(pred, idx_mask)
        target = utils.get_at_index(utils.patchify(images, self.patch), idx_mask - 1)
        return F.mse_loss(pred, target)

    def compiled_modules(self):
        """The transformer blocks of the encoder and of the decoder (masking and token gathers stay eager)."""
        return [self.backbone.vit.encoder.layers, self.decoder.layers]

    def grid_encoder(self):
        return ViTGrid(self.backbone, self.cfg.mae.image_size, self.cfg.mae.patch), self.backbone.dim

    def patch_encoder(self):
        return _MeanToken(self.grid_encoder()[0])
