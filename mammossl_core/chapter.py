"""The set-up every book chapter shares: one call turns a chapter's papermill parameters into the resolved
profile, the device, the dataset (prepared or synthetic), the overrides of the paper-profile smoke test, and the
folder where the chapter saves its results; tables are shown without the pandas index, the dataset, profile and
encoder named once in the caption.

>>> ch = setup("04_whole_image", profile="tiny")   # doctest: +SKIP
>>> ch.show(table, "whole-image test AUC")          # doctest: +SKIP
"""
from __future__ import annotations

import os
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import seaborn as sns
import torch
from IPython.display import display

from . import artefacts
from .config import Profile, resolve
from .io import cache_root, write_json


def dataset_label(data_dir, dataset: str, domain: str = "ddsm") -> str:
    """How a chapter's data is named in captions: synthetic data is always labelled as such."""
    if not data_dir:
        return "synthetic (mammossl generator" + (", digital domain)" if domain == "cmmd" else ")")
    return f"{dataset} ({data_dir})"


@dataclass
class Chapter:
    """What a chapter needs after its parameters: see :func:`setup`."""

    name: str
    profile: str
    prof: Profile
    device: str
    seed: int
    data: Path
    source: str
    out_dir: Path
    #: pretraining overrides shared by every run of the chapter (the smoke test's caps)
    pre: dict
    #: evaluation overrides shared by every protocol of the chapter (the smoke test's caps)
    ev_over: dict
    cmmd_dir: str | None = None
    t0: float = field(default_factory=time.perf_counter)

    def cmmd(self) -> tuple[Path, str]:
        """The CMMD dataset (prepared, or the synthetic digital domain) and its caption label."""
        d = artefacts.dataset(self.cmmd_dir, self.prof, "cmmd", seed=self.seed)
        return d, dataset_label(self.cmmd_dir, "CMMD", "cmmd")

    def caption(self, what: str, encoder: str | None = None) -> str:
        enc = encoder or self.prof.pretrain.encoder
        return f"{what}. Data: {self.source}; profile: {self.profile}; encoder: {enc}."

    def show(self, table: pd.DataFrame, what: str, encoder: str | None = None, digits: int = 3) -> None:
        """Display ``table`` without its index, numbers rounded, with a caption naming data, profile and encoder."""
        styler = table.style.hide(axis="index").format(precision=digits, na_rep="")
        display(styler.set_caption(self.caption(what, encoder)))

    def save(self, name: str, obj: dict | pd.DataFrame) -> Path:
        """Write a result of this chapter to ``out_dir/<chapter>/<name>.json`` (or ``.csv`` for a table)."""
        d = self.out_dir / self.name
        if isinstance(obj, pd.DataFrame):
            path = d / f"{name}.csv"
            d.mkdir(parents=True, exist_ok=True)
            obj.to_csv(path, index=False)
        else:
            path = d / f"{name}.json"
            write_json(path, {"chapter": self.name, "profile": self.profile, "dataset": self.source, **obj})
        return path

    def done(self) -> None:
        print(f"wall time: {time.perf_counter() - self.t0:.0f} s")


def setup(name: str, profile: str = "tiny", dataset: str = "CBIS-DDSM", data_dir=None, cmmd_dir=None, device=None,
          seed: int = 0, out_dir=None, max_steps=None, batch_size=None, epochs=None) -> Chapter:
    """Resolve a chapter's papermill parameters (the ``parameters`` cell of every notebook has these names)."""
    os.environ.setdefault("TQDM_DISABLE", "1")
    warnings.filterwarnings("ignore")
    sns.set_theme(style="whitegrid", context="notebook")
    prof = resolve(profile)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    data = artefacts.dataset(data_dir, prof, "ddsm", seed=seed)
    pre = {k: v for k, v in {"max_steps": max_steps, "batch_size": batch_size, "seed": seed}.items() if v is not None}
    ev_over = {"linear_epochs": epochs, "finetune_epochs": epochs, "supervised_epochs": epochs} if epochs else {}
    out = Path(out_dir) if out_dir else cache_root() / "results" / prof.name
    ch = Chapter(name, prof.name, prof, device, seed, data, dataset_label(data_dir, dataset), out, pre, ev_over,
                 cmmd_dir)
    print(f"profile {prof.name}, data: {ch.source}, device {device}")
    return ch
