"""Mammogram-specific augmentations (paper section IV.A, Fig. 2), batched on the training device.

Each transform takes a batch ``(B, 1, H, W)`` of floats in [0, 1] that carry the full 16-bit precision, draws
independent parameters for every sample from a ``torch.Generator`` and returns a batch of the same shape. They run
on the one-channel image; :meth:`MammoAugment.__call__` duplicates to 3 channels only at the end, so no pseudo-colour
is added and nothing is squashed to 8 bits.

>>> aug = MammoAugment("crop+gamma+contrast", size=96)
>>> g = torch.Generator().manual_seed(0)
>>> v1, v2 = aug(torch.rand(8, 1, 96, 96), g), aug(torch.rand(8, 1, 96, 96), g)  # doctest: +SKIP
"""
from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F

Transform = Callable[[torch.Tensor, torch.Generator], torch.Tensor]


def _u(g: torch.Generator, n: int, lo: float, hi: float, device) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=g, device=device)


def _bcast(v: torch.Tensor) -> torch.Tensor:
    return v.view(-1, 1, 1, 1)


def gaussian_blur_batch(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Separable Gaussian blur with one sigma per sample (reflect padding)."""
    b, c, h, w = x.shape
    radius = int(math.ceil(3 * float(sigma.max())))
    radius = max(1, min(radius, (min(h, w) - 1) // 2))
    t = torch.arange(-radius, radius + 1, device=x.device, dtype=x.dtype)
    k = torch.exp(-0.5 * (t[None, :] / sigma[:, None].clamp_min(1e-3)) ** 2)
    k = k / k.sum(1, keepdim=True)  # (B, K)
    y = x.reshape(1, b * c, h, w)
    kk = k.repeat_interleave(c, 0)
    y = F.conv2d(F.pad(y, (radius, radius, 0, 0), mode="reflect"), kk[:, None, None, :], groups=b * c)
    y = F.conv2d(F.pad(y, (0, 0, radius, radius), mode="reflect"), kk[:, None, :, None], groups=b * c)
    return y.reshape(b, c, h, w)


def random_crop(x: torch.Tensor, g: torch.Generator, scale=(0.2, 1.0), ratio=(3 / 4, 4 / 3)) -> torch.Tensor:
    """Random crop of 20-100% of the area, resized back to the input size (one batched bilinear resampling)."""
    b, _, h, w = x.shape
    area = _u(g, b, *scale, x.device)
    ar = torch.exp(_u(g, b, math.log(ratio[0]), math.log(ratio[1]), x.device))
    sw = torch.sqrt(area * ar).clamp(max=1.0)  # crop width and height as fractions of the input
    sh = torch.sqrt(area / ar).clamp(max=1.0)
    cx = (torch.rand(b, generator=g, device=x.device) * 2 - 1) * (1 - sw)
    cy = (torch.rand(b, generator=g, device=x.device) * 2 - 1) * (1 - sh)
    # the affine sampling grid, built separably (much cheaper than F.affine_grid on CPU)
    bx = (torch.arange(w, device=x.device, dtype=x.dtype) * 2 + 1) / w - 1
    by = (torch.arange(h, device=x.device, dtype=x.dtype) * 2 + 1) / h - 1
    gx = (bx[None, None, :] * sw[:, None, None] + cx[:, None, None]).expand(b, h, w)
    gy = (by[None, :, None] * sh[:, None, None] + cy[:, None, None]).expand(b, h, w)
    grid = torch.stack([gx, gy], dim=-1)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def brightness(x: torch.Tensor, g: torch.Generator, delta: float = 0.2) -> torch.Tensor:
    """Add a constant in [-delta, delta] (fraction of the 16-bit full scale)."""
    return (x + _bcast(_u(g, len(x), -delta, delta, x.device))).clamp(0, 1)


def contrast(x: torch.Tensor, g: torch.Generator, lo: float = 0.6, hi: float = 1.4) -> torch.Tensor:
    """Scale deviations from each image's mean by a factor in [lo, hi]."""
    m = x.mean((1, 2, 3), keepdim=True)
    return ((x - m) * _bcast(_u(g, len(x), lo, hi, x.device)) + m).clamp(0, 1)


def gamma(x: torch.Tensor, g: torch.Generator, lo: float = 0.5, hi: float = 2.0) -> torch.Tensor:
    """``x ** gamma`` with gamma log-uniform in [lo, hi]."""
    gam = torch.exp(_u(g, len(x), math.log(lo), math.log(hi), x.device))
    return x.clamp_min(0).pow(_bcast(gam))


def blur(x: torch.Tensor, g: torch.Generator, lo: float = 0.1, hi: float = 2.0) -> torch.Tensor:
    """Gaussian blur with sigma in [lo, hi] pixels."""
    return gaussian_blur_batch(x, _u(g, len(x), lo, hi, x.device))


def equalize(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Histogram equalisation on the full-precision values (rank transform), blended with strength in [0.5, 1]."""
    b = len(x)
    flat = x.reshape(b, -1)
    order = flat.argsort(1)
    n = flat.shape[1]
    ranks = torch.arange(1, n + 1, device=x.device, dtype=x.dtype).div_(n).expand(b, -1)
    eq = torch.empty_like(flat).scatter_(1, order, ranks)
    a = _u(g, b, 0.5, 1.0, x.device)[:, None]
    return (a * eq + (1 - a) * flat).reshape_as(x)


def sharpen(x: torch.Tensor, g: torch.Generator, lo: float = 0.5, hi: float = 2.0) -> torch.Tensor:
    """Unsharp masking: ``x + s (x - blur(x))`` with strength s in [lo, hi]."""
    s = _bcast(_u(g, len(x), lo, hi, x.device))
    return (x + s * (x - gaussian_blur_batch(x, torch.full((len(x),), 1.0, device=x.device)))).clamp(0, 1)


def highpass(x: torch.Tensor, g: torch.Generator, lo: float = 2.0, hi: float = 6.0) -> torch.Tensor:
    """High-pass filter: subtract a wide blur (sigma in [lo, hi]) and re-centre to mid-grey, rescaled to [0, 1]."""
    hp = x - gaussian_blur_batch(x, _u(g, len(x), lo, hi, x.device))
    scale = hp.abs().amax((1, 2, 3), keepdim=True).clamp_min(1e-6)
    return (0.5 + 0.5 * hp / scale).clamp(0, 1)


#: the eight transforms of Fig. 2, by the names used in pipelines
TRANSFORMS: dict[str, Transform] = {
    "crop": random_crop, "brightness": brightness, "contrast": contrast, "gamma": gamma,
    "blur": blur, "equalize": equalize, "sharpen": sharpen, "highpass": highpass,
}


class MammoAugment:
    """A pipeline of named transforms, e.g. ``"crop+gamma+contrast"`` (the paper's choice, section IV.A).

    ``size`` resizes the input first if it differs (bilinear); the output is ``(B, 3, size, size)`` with the
    channel duplicated, or ``(B, 1, ...)`` with ``channels=1``.
    """

    def __init__(self, pipeline: str = "crop+gamma+contrast", size: int | None = None, channels: int = 3):
        names = [n.strip() for n in pipeline.split("+") if n.strip()] if pipeline not in ("", "none") else []
        bad = [n for n in names if n not in TRANSFORMS]
        if bad:
            raise ValueError(f"unknown transform(s) {bad} in {pipeline!r}; choose from {'+'.join(TRANSFORMS)}")
        if channels not in (1, 3):
            raise ValueError(f"channels={channels}: use 1 or 3")
        self.names, self.size, self.channels = names, size, channels

    def __call__(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != 1:
            raise ValueError(f"expected a (B, 1, H, W) batch, got {tuple(x.shape)}")
        x = x.float()
        if self.size is not None and x.shape[-2:] != (self.size, self.size):
            x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False, antialias=True)
        for n in self.names:
            x = TRANSFORMS[n](x, g)
        return x.expand(-1, self.channels, -1, -1)

    def __repr__(self) -> str:
        return f"MammoAugment({'+'.join(self.names) or 'none'!r}, size={self.size})"


def augmentation_grid(patches: torch.Tensor, names: list[str] | None = None, seed: int = 0):
    """Figure with one row per transform applied to a few patches (paper Fig. 2). Returns the figure."""
    import matplotlib.pyplot as plt

    names = names or list(TRANSFORMS)
    n = len(patches)
    fig, axes = plt.subplots(len(names) + 1, n, figsize=(1.6 * n, 1.6 * (len(names) + 1)), squeeze=False)
    g = torch.Generator().manual_seed(seed)
    rows = [("original", patches)] + [(nm, TRANSFORMS[nm](patches.float(), g)) for nm in names]
    for i, (nm, batch) in enumerate(rows):
        for j in range(n):
            ax = axes[i, j]
            ax.imshow(batch[j, 0].cpu().numpy(), cmap="gray", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            if j == 0:
                ax.set_ylabel(nm, fontsize=9)
    fig.tight_layout()
    return fig
