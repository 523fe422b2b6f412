"""SSL methods, one short class each (paper II.A): SimCLR, BYOL, SwAV and ViT-MAE."""
from .base import Schedule, SSLMethod
from .byol import BYOL
from .mae import MAE
from .simclr import SimCLR
from .swav import SwAV

METHODS: dict[str, type[SSLMethod]] = {"simclr": SimCLR, "byol": BYOL, "swav": SwAV, "mae": MAE}


def build_method(name: str, cfg, encoder: str | None = None) -> SSLMethod:
    """Instantiate method ``name`` (simclr, byol, swav, mae) from a :class:`~mammossl_core.config.PretrainConfig`."""
    if name not in METHODS:
        raise ValueError(f"unknown SSL method {name!r}; choose one of {sorted(METHODS)}")
    return METHODS[name](cfg, encoder)


__all__ = ["Schedule", "SSLMethod", "SimCLR", "BYOL", "SwAV", "MAE", "METHODS", "build_method"]
