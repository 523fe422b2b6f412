"""ViT-MAE on whole images (paper II.A, V.B): mask 75% of the patch tokens and reconstruct their pixels."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from lightly.models import utils
from lightly.models.modules import MAEDecoder, MaskedVisionTransformerTorchvision
from torch import nn
from torchvision.models.vision_transformer import VisionTransformer, vit_b_16

from .base import SSLMethod


def build_vit(encoder: str, image_size: int, patch: int) -> VisionTransformer:
    """ViT-B/16 for the paper profile, a 2-layer ViT for the tiny profile (no weights downloaded)."""
    if encoder == "tiny":
        return VisionTransformer(image_size=image_size, patch_size=patch, num_layers=2, num_heads=2,
                                 hidden_dim=64, mlp_dim=128)
    return vit_b_16(weights=None, image_size=image_size)


class MAE(SSLMethod):
    """lightly's masked ViT (torchvision) encoder + MAE decoder; loss: MSE on the masked patches' pixels.

    Whole images are resized to a square of ``mae_image_size`` pixels (ViT needs a fixed token grid).
    Reference: He et al., "Masked Autoencoders Are Scalable Vision Learners", 2021.
    """

    name = "mae"
    uses_views = False

    def __init__(self, cfg, encoder=None):
        nn.Module.__init__(self)
        self.cfg = cfg
        enc = encoder or cfg.encoder
        vit = build_vit("tiny" if enc == "tiny" else "vit_b_16", cfg.mae_image_size, cfg.mae_patch)
        self.backbone = MaskedVisionTransformerTorchvision(vit=vit)
        self.backbone.dim = vit.hidden_dim
        self.patch = cfg.mae_patch
        self.seq_length = vit.seq_length
        dec_dim = 64 if enc == "tiny" else 512
        self.decoder = MAEDecoder(seq_length=vit.seq_length, num_layers=1, num_heads=2 if enc == "tiny" else 16,
                                  embed_input_dim=vit.hidden_dim, hidden_dim=dec_dim, mlp_dim=dec_dim * 4,
                                  out_dim=cfg.mae_patch**2 * 3)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, dec_dim))
        self.mask_ratio = cfg.mae_mask_ratio

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

    def embed(self, x):
        return self.backbone.encode(images=x).mean(1)
