"""Artefacts shared by several notebooks (a prepared dataset, a pretrained encoder, an evaluation), produced once
under one cache directory and keyed by their whole configuration and the package's source
(:func:`mammossl_core.source_digest`), so that re-running the book (or one notebook after a failure) reuses what is
already there and changed code never reuses stale results.

The cache root is ``$MAMMOSSL_CACHE`` or ``.cache/`` in the working directory (:func:`mammossl_core.io.cache_root`).
"""
from __future__ import annotations

import dataclasses
import hashlib
import inspect
import json
import os
import shutil
from pathlib import Path

from . import launch, results, source_digest
from .config import Profile, resolve
from .data.layout import PreparedDataset
from .data.products import build_products
from .data.synthetic import synthesize
from .io import cache_root, write_json
from .pretrain import drop_resume_state, pretrain


def _jsonable(o):
    if isinstance(o, Profile):
        return o.to_dict()
    if dataclasses.is_dataclass(o):
        return dataclasses.asdict(o)
    return getattr(o, "__name__", str(o))


def key(**config) -> str:
    """A short stable hash of a JSON-able configuration and the package source."""
    blob = json.dumps({"mammossl": source_digest(), **config}, sort_keys=True, default=_jsonable)
    return hashlib.sha1(blob.encode()).hexdigest()[:12]


def synthetic_dataset(profile: str | Profile = "tiny", domain: str = "ddsm", patients: int | None = None,
                      seed: int = 0, **params) -> Path:
    """A synthetic prepared dataset with its data products, generated once per configuration."""
    prof = resolve(profile)
    d = cache_root() / "data" / f"synth-{domain}-{prof.name}-{key(patients=patients, seed=seed, data=prof.data, synth=prof.synth, **params)}"
    if not (d / "dataset.json").is_file():
        if d.exists():
            shutil.rmtree(d)  # a generation that died half-way
        synthesize(d, patients=patients, seed=seed, profile=prof, domain=domain, progress=False, **params)
    build_products(d, prof, progress=False)
    return d


def dataset(data_dir: str | os.PathLike | None, profile: str | Profile = "tiny", domain: str = "ddsm",
            **synth) -> Path:
    """``data_dir`` if given (a real prepared dataset, its products built if missing), else the cached synthetic
    dataset of ``domain``."""
    if data_dir:
        PreparedDataset(data_dir)
        build_products(data_dir, resolve(profile), progress=False)
        return Path(data_dir)
    return synthetic_dataset(profile, domain, **synth)


def pretrained(method: str, data: str | os.PathLike, profile: str | Profile = "tiny", device: str | None = None,
               gpus: int | None = None, **overrides) -> Path:
    """The run directory of ``method`` pretrained on ``data`` at ``profile`` with pretraining ``overrides``;
    trained once, then reused (an interrupted run resumes). The key covers the whole resolved profile, so a finished
    run is never resumed again: its resume state is dropped and ``best.pt`` (the selected model) is what stays.

    ``gpus`` processes train it (default: every visible GPU, one process on a CPU); more than one are launched with
    ``torchrun`` (:mod:`mammossl_core.launch`). The run's ``config.json`` records its world size, global batch and
    learning rate."""
    prof = resolve(profile, pretrain=overrides)
    run = cache_root() / "runs" / f"{method}-{Path(data).name}-{prof.name}-{key(method=method, profile=prof)}"
    if not (run / "summary.json").is_file():
        # the overrides go through as well: explicit choices win over the per-method ones (pretrain.method_config)
        nproc = launch.processes(gpus, device)
        if nproc > 1:
            launch.torchrun(method, data, run, prof, overrides, nproc, device)
        else:
            pretrain(method, data, run, prof, resume=True, device=device, progress=False, **overrides)
        drop_resume_state(run)
    return run


def evaluation(fn, name: str, profile: str | Profile = "tiny", **kwargs) -> results.Evaluation | results.CrossValidation:
    """The result of an evaluation protocol ``fn(profile=..., **kwargs, out=...)`` (a record of
    :mod:`mammossl_core.results` whose ``out`` is its directory), computed once per configuration: the protocol,
    the whole resolved profile and every argument, defaults filled in. ``name`` only labels the directory: a chapter
    that asks for an evaluation another chapter ran under another name (chapter 6's base encoder is chapter 4's
    SwAV) gets that one."""
    prof = resolve(profile)
    bound = inspect.signature(fn).bind_partial(profile=prof, **kwargs)
    bound.apply_defaults()
    config = {k: v for k, v in bound.arguments.items() if k not in ("out", "profile")}
    k = key(fn=fn.__name__, profile=prof, **config)
    root = cache_root() / "eval"
    for done in sorted(root.glob(f"*-{k}")):
        if results.CrossValidation.exists(done) or results.Evaluation.exists(done):
            return results.load(done)
    return fn(out=root / f"{name}-{k}", profile=prof, **kwargs)


__all__ = ["key", "synthetic_dataset", "dataset", "pretrained", "evaluation", "cache_root", "write_json"]
