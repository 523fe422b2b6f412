"""Checkpoints: atomic save, exact resume, weights-only loading.

A checkpoint is a dict of tensors and plain Python values only, so it loads with ``torch.load(weights_only=True)``
and never unpickles arbitrary objects.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch

from .io import atomic_path

FORMAT = 1


class CheckpointError(ValueError):
    """A checkpoint is missing, unreadable, or from another method/encoder than asked for."""


def save(path: str | os.PathLike, state: dict) -> None:
    """Write ``state`` to ``path`` atomically (temporary file, then rename)."""
    with atomic_path(path) as tmp:
        torch.save({"format": FORMAT, **state}, tmp)


def resolve_path(path: str | os.PathLike) -> Path:
    """A run directory means its ``best.pt`` (``last.pt`` if there is no best yet); a file is itself."""
    path = Path(path)
    if path.is_dir():
        return path / "best.pt" if (path / "best.pt").is_file() else path / "last.pt"
    return path


def load(path: str | os.PathLike, method: str | None = None, encoder: str | None = None,
         map_location="cpu") -> dict:
    """Load a checkpoint (or a run directory's, :func:`resolve_path`) with ``weights_only=True``; check its method
    and encoder if given."""
    path = resolve_path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # torch raises several types for corrupt or unsafe files
        raise CheckpointError(f"{path}: cannot load checkpoint safely ({e})") from e
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a mammossl checkpoint (format {FORMAT})")
    for key, want in (("method", method), ("encoder", encoder)):
        if want is not None and state.get(key) != want:
            raise CheckpointError(
                f"{path}: checkpoint was trained with {key} {state.get(key)!r}, but {want!r} was asked for")
    return state


def load_backbone_state(path: str | os.PathLike, encoder: str | None = None) -> tuple[dict, dict]:
    """The pretrained backbone's weights (``backbone.*`` keys, prefix removed) and the checkpoint's metadata."""
    state = load(path, encoder=encoder)
    weights = {k[len("backbone."):]: v for k, v in state["model"].items() if k.startswith("backbone.")}
    meta = {k: v for k, v in state.items() if k not in ("model", "optimizer")}
    return weights, meta
