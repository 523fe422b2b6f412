"""From a patch encoder to a whole-image classifier (paper II.B, Fig. 1); tensors in, tensors out (models are
loaded by :mod:`mammossl_core.loading`).

The pretrained trunk runs fully convolutionally over a whole mammogram and yields the grid of embeddings
``H`` (``r x c x m``); the breast mask, reduced to the same grid, marks the background cells; a pooling head
(:mod:`~mammossl_core.pooling`) condenses ``H`` into ``z`` and a linear layer gives the malignancy logit.

What equals what: the trunk is translation-equivariant with the total stride ``s`` (:func:`~mammossl_core.encoders.total_stride`: 32 for the ResNets, 8 for
the tiny trunk), so a crop
of the image starting at a multiple of ``s`` gives exactly the same embeddings as the whole image at the
corresponding cells, for every cell whose receptive field lies inside the crop (tests/test_whole_image.py checks
this to float precision in eval mode). A tile's *pooled* embedding (how the encoder saw patches during
pretraining) is not a grid cell: the grid sees each cell in the context of its whole receptive field.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .pooling import build_pooling

def grid_mask(mask: torch.Tensor, r: int, c: int, min_breast: float = 0.3) -> torch.Tensor:
    """Reduce pixel breast masks ``(B, H, W)`` to the ``r x c`` grid: True where at least ``min_breast`` of the
    cell is breast."""
    frac = F.adaptive_avg_pool2d(mask.float().unsqueeze(1), (r, c)).squeeze(1)
    return frac >= min_breast


class FeatureNorm(nn.Module):
    """Fixed per-channel standardisation of a grid ``(B, m, r, c)`` with training-set statistics (the identity
    until :meth:`fit` is called). Linear probes are usually given standardised features (e.g. the BatchNorm
    without affine parameters in MAE's linear probing); the paper does not say, and unscaled ReLU features made the
    linear layer and MIP overfit within a few epochs at the tiny profile."""

    def __init__(self, m: int):
        super().__init__()
        self.register_buffer("mean", torch.zeros(m))
        self.register_buffer("std", torch.ones(m))

    @torch.no_grad()
    def fit(self, mean: torch.Tensor, std: torch.Tensor) -> "FeatureNorm":
        self.mean.copy_(mean)
        self.std.copy_(std.clamp_min(1e-6))
        return self

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return (h - self.mean.view(1, -1, 1, 1)) / self.std.view(1, -1, 1, 1)


class PooledHead(nn.Module):
    """One pooling and the linear layer that reads it: standardised cell embeddings ``(B, K, m)`` -> logits ``(B,)``,
    pooling weights ``(B, K)`` and the pooled embedding ``(B, m)``."""

    def __init__(self, m: int, pooling: str = "gap", mip_hidden: int = 512):
        super().__init__()
        self.pool = build_pooling(pooling, m, mip_hidden)
        self.head = nn.Linear(m, 1)

    def forward(self, h: torch.Tensor, mask: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        z, w = self.pool(h, mask)
        return self.head(z).squeeze(-1), w, z


class WholeImageClassifier(nn.Module):
    """Grid encoder + pooling (GAP, MIP or SA) + linear layer: ``(B, 1, H, W)`` images -> logits ``(B,)``.

    With ``restarts > 1`` the pooling and its linear layer are ``restarts`` independently initialised members
    (:class:`PooledHead`, each fitted on its own: a MIP attention fitted from several random starts) whose logits
    and pooling weights are averaged: the averaged logit is one model, scored, finetuned and drawn as any other."""

    def __init__(self, trunk: nn.Module, m: int, pooling: str = "gap", mip_hidden: int = 512, restarts: int = 1):
        super().__init__()
        if restarts < 1:
            raise ValueError(f"restarts={restarts}: a classifier needs at least one pooling head")
        self.trunk, self.m = trunk, m
        self.norm = FeatureNorm(m)
        self.members = nn.ModuleList(PooledHead(m, pooling, mip_hidden) for _ in range(restarts))

    @property
    def pool(self) -> nn.Module:
        """The first member's pooling (all members pool alike: what the pooling is, not how it was fitted)."""
        return self.members[0].pool

    def grid(self, x: torch.Tensor) -> torch.Tensor:
        """Embedding grid ``(B, m, r, c)`` of images ``(B, 1, H, W)`` (duplicated to 3 channels)."""
        return self.trunk(x.expand(-1, 3, -1, -1))

    def _cells(self, h: torch.Tensor, mask: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
        return self.norm(h).flatten(2).transpose(1, 2), None if mask is None else mask.flatten(1)

    def pooled(self, h: torch.Tensor, mask: torch.Tensor | None, member: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """One member's pooled embedding ``(B, m)`` (what its linear layer reads) and pooling weights ``(B, r, c)``
        of a grid ``(B, m, r, c)`` and grid mask ``(B, r, c)``."""
        b, m, r, c = h.shape
        z, w = self.members[member].pool(*self._cells(h, mask))
        return z, w.reshape(b, r, c)

    def classify(self, h: torch.Tensor, mask: torch.Tensor | None,
                 member: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits and pooling weights ``(B, r, c)`` from a grid ``(B, m, r, c)`` and grid mask ``(B, r, c)``: the
        members' averages, or one ``member``'s own."""
        b, m, r, c = h.shape
        cells = self._cells(h, mask)
        outs = [self.members[k](*cells) for k in (range(len(self.members)) if member is None else [member])]
        logits = torch.stack([o[0] for o in outs]).mean(0)
        return logits, torch.stack([o[1] for o in outs]).mean(0).reshape(b, r, c)

    def forward(self, x: torch.Tensor, breast: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.grid(x)
        mask = None if breast is None else grid_mask(breast, h.shape[2], h.shape[3])
        return self.classify(h, mask)


def whole_image_augment(x: torch.Tensor, mask: torch.Tensor, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Finetuning augmentation (paper V.C), batched: zoom 80-120%, horizontal and vertical flips, rotation within
    +-25 degrees, brightness within +-20 (8-bit) pixel values. ``x`` is ``(B, 1, H, W)``, ``mask`` ``(B, H, W)``."""
    b, _, h, w = x.shape
    dev = x.device

    def u(lo, hi):
        return lo + (hi - lo) * torch.rand(b, generator=g, device=dev)

    zoom = u(0.8, 1.2)
    ang = u(-25, 25) * torch.pi / 180
    fx = torch.where(torch.rand(b, generator=g, device=dev) < 0.5, -1.0, 1.0)
    fy = torch.where(torch.rand(b, generator=g, device=dev) < 0.5, -1.0, 1.0)
    cos, sin = torch.cos(ang) / zoom, torch.sin(ang) / zoom
    aspect = h / w
    theta = torch.stack([torch.stack([cos * fx, -sin * aspect * fy, torch.zeros_like(cos)], 1),
                         torch.stack([sin / aspect * fx, cos * fy, torch.zeros_like(cos)], 1)], 1)
    grid = F.affine_grid(theta, [b, 1, h, w], align_corners=False)
    xo = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    mo = F.grid_sample(mask.float().unsqueeze(1), grid, mode="nearest", align_corners=False).squeeze(1) > 0.5
    xo = (xo + (u(-20, 20) / 255.0).view(-1, 1, 1, 1) * (xo > 0)).clamp(0, 1)
    return xo, mo
