"""The one way from a pretraining checkpoint (or run directory) or an evaluation directory to a model.

* :func:`load_method`: the SSL method of a checkpoint, rebuilt from the configuration saved in it;
* :func:`patch_encoder`: a patch to one embedding (Table 1), for every method (:func:`random_patch_encoder`: the
  same architecture untrained);
* :func:`grid_encoder`: a whole image to a grid of embeddings (paper II.B), pretrained or randomly initialised;
* :func:`classifier`: the whole-image classifier that an evaluation protocol saved (linear, finetuned, supervised);
* :func:`profile_of`: the profile a checkpoint was trained at (commands and notebooks default to it).

>>> enc = patch_encoder("runs/byol")              # doctest: +SKIP
>>> model = classifier("runs/eval/linear-mip")    # doctest: +SKIP
"""
from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from . import checkpoint as ck
from .config import DEFAULT_PROFILE, pretrain_config
from .encoders import build_trunk
from .results import Evaluation
from .ssl import SSLMethod, build_method
from .whole_image import WholeImageClassifier

PathLike = str | os.PathLike


#: a run directory means its ``best.pt`` (``last.pt`` if there is no best yet); a file is itself
checkpoint_path = ck.resolve_path


def load_method(checkpoint: PathLike, method: str | None = None, device="cpu") -> tuple[SSLMethod, dict]:
    """The pretrained SSL method of ``checkpoint`` in eval mode, and the checkpoint's metadata (method, encoder,
    profile, step, config)."""
    state = ck.load(checkpoint, method=method)
    model = build_method(state["method"], pretrain_config(state["config"]))
    model.load_state_dict(state["model"])
    meta = {k: v for k, v in state.items() if k not in ("model", "optimizer")}
    return model.to(device).eval(), meta


def profile_of(checkpoint: PathLike | None) -> str:
    """The name of the profile ``checkpoint`` was trained at (:data:`~mammossl_core.config.DEFAULT_PROFILE` for
    no checkpoint)."""
    if checkpoint is None:
        return DEFAULT_PROFILE
    return ck.load(checkpoint).get("profile", DEFAULT_PROFILE)


def patch_encoder(checkpoint: PathLike, device="cpu") -> nn.Module:
    """``(B, 3, p, p) -> (B, m)`` of a pretraining checkpoint, in eval mode."""
    model, _ = load_method(checkpoint, device=device)
    return model.patch_encoder().to(device).eval()


def random_patch_encoder(checkpoint: PathLike, seed: int = 0, device="cpu") -> nn.Module:
    """The patch encoder of ``checkpoint``'s method and architecture with its weights drawn from ``seed`` instead of
    trained (the random floor of a probe), in eval mode."""
    state = ck.load(checkpoint)
    torch.manual_seed(seed)
    return build_method(state["method"], pretrain_config(state["config"])).patch_encoder().to(device).eval()


def grid_encoder(checkpoint: PathLike | None = None, encoder: str | None = None,
                 seed: int = 0) -> tuple[nn.Module, int, dict]:
    """(grid encoder ``(B, 3, H, W) -> (B, m, r, c)``, ``m``, metadata).

    With a checkpoint, its pretrained encoder (any method); without one, ``encoder`` randomly initialised from
    ``seed`` (the paper's "random" baseline and the supervised model's start), so the same seed gives the same
    weights wherever it is rebuilt.
    """
    if checkpoint is not None:
        model, meta = load_method(checkpoint)
        trunk, m = model.grid_encoder()
        return trunk, m, meta
    if encoder is None:
        raise ValueError("give a checkpoint or an encoder name")
    torch.manual_seed(seed)
    trunk, m = build_trunk(encoder)
    return trunk, m, {"encoder": encoder, "method": "random"}


def member_keys(state: dict) -> dict:
    """A classifier's saved weights with the names of today's :class:`WholeImageClassifier`: a file saved before its
    pooling and linear layer became members (``pool.*``, ``head.*``) holds member 0's."""
    return {(f"members.0.{k}" if k.split(".")[0] in ("pool", "head") else k): v for k, v in state.items()}


def classifier(eval_dir: PathLike, device="cpu") -> WholeImageClassifier:
    """The whole-image classifier saved by an evaluation protocol in ``eval_dir`` (its ``result.json`` says which),
    in eval mode: finetuned and supervised models from ``model.pt`` (every weight); a linear evaluation from its
    encoder (checkpoint, or the seeded random encoder with its re-estimated statistics) and ``head.pt``."""
    eval_dir = Path(eval_dir)
    saved = Evaluation.load(eval_dir)
    trunk, m, _ = grid_encoder(saved.checkpoint, saved.encoder, saved.seed)
    model = WholeImageClassifier(trunk, m, saved.pooling, saved.mip_hidden, saved.restarts)
    weights = eval_dir / ("model.pt" if (eval_dir / "model.pt").is_file() else "head.pt")
    state = member_keys(torch.load(weights, map_location="cpu", weights_only=True))
    model.load_state_dict(state, strict=weights.name == "model.pt")
    return model.to(device).eval()
