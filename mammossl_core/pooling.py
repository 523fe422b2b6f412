"""Pooling a grid of patch embeddings into one image embedding (paper II.B and V.D).

Every head takes ``h`` of shape ``(B, K, m)`` (the grid ``H`` flattened, ``K = r c``) and a boolean ``mask`` of shape
``(B, K)`` that is True on breast cells; background cells take no part. Each returns ``(z, weights)`` with
``z`` of shape ``(B, m)`` and ``weights`` of shape ``(B, K)`` (the share of each cell in ``z``).
"""
from __future__ import annotations

import torch
from torch import nn


def _check(h: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    if h.dim() != 3:
        raise ValueError(f"expected embeddings of shape (B, K, m), got {tuple(h.shape)}")
    if mask is None:
        return torch.ones(h.shape[:2], dtype=torch.bool, device=h.device)
    if mask.shape != h.shape[:2]:
        raise ValueError(f"mask shape {tuple(mask.shape)} does not match embeddings {tuple(h.shape[:2])}")
    # an image with no breast cell would give 0/0: fall back to all cells
    return mask | ~mask.any(1, keepdim=True)


class GAP(nn.Module):
    """Global average pooling over breast cells, equation (1): ``z = (1/K) sum_k h_k``."""

    #: whether its weights are learned attention (worth drawing as a heatmap); GAP's are uniform
    attends = False
    #: whether :meth:`start_as_gap` can make it pool exactly as GAP (so that a linear layer fitted on GAP's features
    #: is a valid start for it)
    starts_as_gap = True
    #: whether it has weights to fit
    learned = False

    @classmethod
    def build(cls, m: int, mip_hidden: int = 512) -> "GAP":
        return cls()

    def start_as_gap(self) -> None:
        """Nothing to do: GAP is GAP."""

    def forward(self, h: torch.Tensor, mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        mask = _check(h, mask)
        w = mask.to(h.dtype)
        w = w / w.sum(1, keepdim=True)
        return torch.einsum("bk,bkm->bm", w, h), w


class MIP(nn.Module):
    """Multiple-instance pooling with gated attention, equations (2)-(3) (Ilse et al., 2018).

    ``a_k = softmax_k( w^T (tanh(V h_k) * sigm(U h_k)) )`` over breast cells, ``z = sum_k a_k h_k``;
    ``V, U`` are ``n x m`` and ``w`` has ``n`` entries (the paper uses n = 512).

    >>> pool = MIP(m=2048)
    >>> z, a = pool(torch.randn(2, 100, 2048))  # z: (2, 2048), a sums to one per image
    """

    attends = True
    starts_as_gap = True
    learned = True

    @classmethod
    def build(cls, m: int, mip_hidden: int = 512) -> "MIP":
        return cls(m, mip_hidden)

    def start_as_gap(self) -> None:
        """Set ``w = 0``: every breast cell scores 0, the attention is uniform and ``z`` is GAP's (equation 1), so
        MIP contains GAP and training starts from it. ``V`` and ``U`` keep their random start: ``w`` receives the
        first gradients and the gates follow."""
        with torch.no_grad():
            self.w.weight.zero_()

    def __init__(self, m: int, n: int = 512):
        super().__init__()
        if m < 1 or n < 1:
            raise ValueError(f"MIP needs positive sizes, got m={m}, n={n}")
        self.V = nn.Linear(m, n, bias=False)
        self.U = nn.Linear(m, n, bias=False)
        self.w = nn.Linear(n, 1, bias=False)

    def scores(self, h: torch.Tensor) -> torch.Tensor:
        """Unnormalised attention ``w^T (tanh(V h) * sigm(U h))``, shape ``(B, K)``."""
        return self.w(torch.tanh(self.V(h)) * torch.sigmoid(self.U(h))).squeeze(-1)

    def forward(self, h: torch.Tensor, mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        mask = _check(h, mask)
        s = self.scores(h).masked_fill(~mask, float("-inf"))
        a = torch.softmax(s, dim=1)
        return torch.einsum("bk,bkm->bm", a, h), a


class SA(nn.Module):
    """Self-attention pooling (paper V.D): transformer layers over the grid with a prepended class token whose
    output is the image embedding. Background cells are masked out of the attention.

    ``weights`` are the class token's attention over the cells in the last layer, averaged over heads.
    """

    attends = True
    #: a class token through a transformer layer is not an average of the cells at any setting of its weights
    starts_as_gap = False
    learned = True

    @classmethod
    def build(cls, m: int, mip_hidden: int = 512) -> "SA":
        return cls(m, heads=8 if m % 8 == 0 else 1)

    def __init__(self, m: int, layers: int = 1, heads: int = 8, pos_cells: int = 4096):
        super().__init__()
        if m % heads:
            raise ValueError(f"embedding size m={m} must be divisible by heads={heads}")
        self.cls = nn.Parameter(torch.zeros(1, 1, m))
        self.pos = nn.Parameter(torch.zeros(1, pos_cells, m))
        nn.init.trunc_normal_(self.pos, std=0.02)
        self.layers = nn.ModuleList(
            nn.TransformerEncoderLayer(m, heads, dim_feedforward=2 * m, dropout=0.0, batch_first=True, norm_first=True)
            for _ in range(layers))
        self.norm = nn.LayerNorm(m)

    def forward(self, h: torch.Tensor, mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        mask = _check(h, mask)
        b, k, m = h.shape
        if k > self.pos.shape[1]:
            raise ValueError(f"{k} grid cells exceed the {self.pos.shape[1]} position embeddings of SA")
        x = torch.cat([self.cls.expand(b, -1, -1), h + self.pos[:, :k]], 1)
        pad = torch.cat([torch.zeros(b, 1, dtype=torch.bool, device=h.device), ~mask], 1)
        for layer in self.layers[:-1]:
            x = layer(x, src_key_padding_mask=pad)
        last = self.layers[-1]
        y = last.norm1(x)
        _, attn = last.self_attn(y[:, :1], y, y, key_padding_mask=pad, need_weights=True, average_attn_weights=True)
        x = last(x, src_key_padding_mask=pad)
        return self.norm(x[:, 0]), attn[:, 0, 1:]


#: the one list of poolings: the command line, ``predict`` and the attention analysis read it
POOLINGS: dict[str, type[nn.Module]] = {"gap": GAP, "mip": MIP, "sa": SA}


def pooling_class(name: str) -> type[nn.Module]:
    """The pooling called ``name``; an unknown name is an error that lists the known ones."""
    if name not in POOLINGS:
        raise ValueError(f"unknown pooling {name!r}; choose one of {sorted(POOLINGS)}")
    return POOLINGS[name]


def build_pooling(name: str, m: int, mip_hidden: int = 512) -> nn.Module:
    """``gap``, ``mip`` (n = ``mip_hidden``) or ``sa`` for embeddings of size ``m``."""
    return pooling_class(name).build(m, mip_hidden)
