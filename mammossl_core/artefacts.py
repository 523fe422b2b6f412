"""Artefacts shared by several notebooks (a prepared dataset, a pretrained encoder, an evaluation), produced once
under one cache directory and keyed by their configuration, so that re-running the book (or one notebook after a
failure) reuses what is already there.

The cache root is ``$MAMMOSSL_CACHE`` or ``.cache/`` in the working directory.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

from .data.layout import write_json


def cache_root() -> Path:
    return Path(os.environ.get("MAMMOSSL_CACHE", ".cache")).resolve()


def key(**config) -> str:
    """A short stable hash of a JSON-able configuration."""
    return hashlib.sha1(json.dumps(config, sort_keys=True, default=lambda o: getattr(o, "__name__", str(o))).encode()).hexdigest()[:12]


def synthetic_dataset(profile: str = "tiny", domain: str = "ddsm", patients: int | None = None, seed: int = 0,
                      **params) -> Path:
    """A synthetic prepared dataset with its tile store, generated once per configuration."""
    from .data.synthetic import synthesize
    from .data.tiles import TileStore

    d = cache_root() / "data" / f"synth-{domain}-{profile}-{key(patients=patients, seed=seed, **params)}"
    if not (d / "dataset.json").is_file():
        if d.exists():
            shutil.rmtree(d)  # a generation that died half-way
        synthesize(d, patients=patients, seed=seed, profile=profile, domain=domain, progress=False, **params)
    TileStore.build(d, progress=False)
    return d


def dataset(data_dir: str | os.PathLike | None, profile: str = "tiny", domain: str = "ddsm", **synth) -> Path:
    """``data_dir`` if given (a real prepared dataset), else the cached synthetic dataset of ``domain``."""
    if data_dir:
        from .data.layout import PreparedDataset
        from .data.tiles import TileStore

        PreparedDataset(data_dir)
        TileStore.build(data_dir, progress=False)
        return Path(data_dir)
    return synthetic_dataset(profile, domain, **synth)


def pretrained(method: str, data: str | os.PathLike, profile="tiny", device: str | None = None,
               **overrides) -> Path:
    """The run directory of ``method`` pretrained on ``data`` with ``overrides`` (``profile`` is a name or a
    :class:`~mammossl_core.config.Profile`); trained once, then reused (an interrupted run resumes)."""
    import dataclasses

    from .pretrain import pretrain

    name = profile if isinstance(profile, str) else profile.name
    extra = {} if isinstance(profile, str) else {"data": dataclasses.asdict(profile.data)}
    run = cache_root() / "runs" / f"{method}-{Path(data).name}-{name}-{key(**overrides, **extra)}"
    if not (run / "summary.json").is_file():
        pretrain(method, data, run, profile, resume=True, device=device, progress=False, **overrides)
        write_json(run / "overrides.json", overrides)
    return run


def evaluation(fn, name: str, **kwargs) -> dict:
    """The result of an evaluation protocol ``fn(**kwargs, out=...)``, computed once per configuration."""
    out = cache_root() / "eval" / f"{name}-{key(fn=fn.__name__, **kwargs)}"
    result = out / ("cv_result.json" if name.startswith("cv") else "result.json")
    if result.is_file():
        return {**json.loads(result.read_text()), "out": str(out)}
    return {**fn(out=out, **kwargs), "out": str(out)}
