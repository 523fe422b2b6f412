"""The set-up every book chapter shares: one call turns a chapter's papermill parameters into the resolved
profile, the device, the dataset (prepared or synthetic), the overrides of the paper-profile smoke test, and the
folder where the chapter saves its results; tables are shown without the pandas index, the dataset, profile and
encoder named once in the caption.

>>> ch = from_parameters(globals())               # doctest: +SKIP (a notebook's set-up cell)
>>> ch.show(table, "whole-image test AUC")          # doctest: +SKIP
"""
from __future__ import annotations

import dataclasses
import json
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path


def quiet_libraries() -> None:
    """Silence, by category and module, the warnings that libraries raise on every call and that say nothing about
    the chapter's results; every other warning shows in the chapter."""
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", message="IProgress not found")  # tqdm.auto without ipywidgets
    warnings.filterwarnings("ignore", module="umap")  # umap-learn: numba and n_jobs notices
    warnings.filterwarnings("ignore", message=".*TypedStorage is deprecated.*")


quiet_libraries()  # before the imports below: tqdm.auto warns when it is first imported in a kernel without ipywidgets

import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
import torch  # noqa: E402
from IPython.display import display  # noqa: E402

from . import artefacts, claims  # noqa: E402
from .preregistration import plan  # noqa: E402
from .config import EvalConfig, Profile, resolve  # noqa: E402
from .evaldata import lesion_detector_ceiling  # noqa: E402
from .evaluate import cross_validate  # noqa: E402
from .io import cache_root, write_json  # noqa: E402
from .results import CrossValidation, Evaluation  # noqa: E402


#: the saved tables that pages and tests outside their chapter read: (chapter, name)
LINEAR_EVALUATION = ("04_whole_image", "linear_evaluation")
LOCALISATION = ("04_whole_image", "localisation")
LABEL_FRACTIONS = ("05_finetuning", "label_fractions")


def result_path(results_dir, chapter: str, name: str, suffix: str = "csv") -> Path:
    """Where :meth:`Chapter.save` writes the result ``name`` of ``chapter`` under ``results_dir``."""
    return Path(results_dir) / chapter / f"{name}.{suffix}"


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
    #: pretraining overrides shared by every run of the chapter (the seed; the smoke test's step and batch caps)
    pretrain_overrides: dict
    #: evaluation overrides shared by every protocol of the chapter (the smoke test's epoch cap)
    eval_overrides: dict
    cmmd_dir: str | None = None
    #: pretraining processes, one per GPU (None: every visible GPU; 1 on a CPU)
    gpus: int | None = None
    #: the training replicate: its training seed (:attr:`seed`) is ``data_seed + 1000 * replicate``
    replicate: int = 0
    #: the seed that drew the datasets (the synthetic CBIS-DDSM and CMMD sets), the same for every replicate
    data_seed: int = 0
    t0: float = field(default_factory=time.perf_counter)
    _ceiling: float | None = None
    #: pretraining runs of this chapter whose global batch had to shrink to fit the GPUs (for the captions)
    _shrunk: dict = field(default_factory=dict)
    #: tables shown so far (their HTML ids)
    _tables: int = 0

    def pretrained(self, method: str, data=None, profile: Profile | None = None, **overrides) -> Path:
        """:func:`mammossl_core.artefacts.pretrained` on the chapter's device and GPUs with its overrides
        (:attr:`pretrain_overrides`): the run directory. A run whose global batch shrank to fit the GPUs is named in
        the captions."""
        run = artefacts.pretrained(method, data if data is not None else self.data, profile or self.prof,
                                   device=self.device, gpus=self.gpus, **{**overrides, **self.pretrain_overrides})
        cfg = json.loads((run / "config.json").read_text())
        if cfg.get("batch_reduced_from"):
            self._shrunk[method] = cfg
        return run

    def evaluation(self, fn, name: str, data=None, **kwargs) -> Evaluation:
        """The evaluation protocol ``fn`` (:mod:`~mammossl_core.evaluate`, :mod:`~mammossl_core.patch_eval`) on the
        chapter's data (or ``data``), profile, seed and device with its :attr:`eval_overrides`, computed once
        (:func:`mammossl_core.artefacts.evaluation`; ``name`` labels its directory)."""
        return artefacts.evaluation(fn, name, data=self.data if data is None else data, profile=self.prof,
                                    seed=self.seed, device=self.device, **{**self.eval_overrides, **kwargs})

    def cross_validation(self, protocol, name: str, data, folds: int, **kwargs) -> CrossValidation:
        """:func:`~mammossl_core.evaluate.cross_validate` of ``protocol`` over the first ``folds`` folds of
        ``data``, as :meth:`evaluation`."""
        return self.evaluation(cross_validate, f"cv-{name}-{folds}", data, protocol=protocol, k=folds, **kwargs)

    @property
    def eval(self) -> EvalConfig:
        """The evaluation settings in effect: the profile's, with the chapter's overrides (``epochs``)."""
        return dataclasses.replace(self.prof.eval, **self.eval_overrides)

    @property
    def ceiling(self) -> float:
        """:func:`~mammossl_core.evaldata.lesion_detector_ceiling` of the chapter's test images."""
        if self._ceiling is None:
            self._ceiling = lesion_detector_ceiling(self.data)
        return self._ceiling

    def cmmd(self) -> tuple[Path, str]:
        """The CMMD dataset (prepared, or the synthetic digital domain) and its caption label."""
        d = artefacts.dataset(self.cmmd_dir, self.prof, "cmmd", seed=self.data_seed)
        return d, dataset_label(self.cmmd_dir, "CMMD", "cmmd")

    def caption(self, what: str, encoder: str | None = None, ceiling: bool = False) -> str:
        enc = encoder or self.prof.pretrain.encoder
        text = f"{what}. Data: {self.source}; profile: {self.profile}; encoder: {enc}."
        for m, c in self._shrunk.items():
            text += (f" {m} pretrained at a global batch of {c['global_batch']} instead of {c['batch_reduced_from']} "
                     f"({c['world_size']} GPU(s)), learning rate scaled linearly to {c['lr']:.3g}.")
        if ceiling and self.ceiling == self.ceiling:  # not NaN
            text += (f" A perfect lesion detector blind to pathology would score {self.ceiling:.3f} AUC on these "
                     "test images.")
        return text

    def show(self, table: pd.DataFrame, what: str, encoder: str | None = None, digits: int = 3,
             ceiling: bool = False, uuid: str | None = None) -> None:
        """Display ``table`` without its index, numbers rounded, with a caption naming data, profile and encoder
        (and, for AUC tables, the lesion-detector ceiling). The HTML table's id is ``uuid``, by default the chapter's
        name and the table's number in it, instead of pandas' random one, so that nbval compares the same HTML."""
        self._tables += 1
        styler = table.style.hide(axis="index").format(precision=digits, na_rep="")
        styler = styler.set_uuid(uuid or f"{self.name}_{self._tables}")
        display(styler.set_caption(self.caption(what, encoder, ceiling)))

    def claim(self, key: str, paper: str, a: str, a_run: Evaluation | CrossValidation, b: str,
              b_run: Evaluation | CrossValidation, paper_effect: float | None = None, **fill) -> claims.Claim:
        """Record this replicate's evidence for the pre-registered claim ``key`` (its statement, with ``fill`` put
        into its placeholders, and its rule come from :mod:`mammossl_core.preregistration`): the saved runs that
        test it (their test predictions are copied beside the chapter's results) and the paper's effect ``a - b``
        where it reports one. Returns the recorded claim (:meth:`show_claims` computes the evidence of all of
        them at once)."""
        rule = plan().rule(key)
        if rule.chapter != self.name:
            raise ValueError(f"claim {key!r} is registered for {rule.chapter}, not {self.name}")
        c = claims.Claim(key, self.name, rule.statement.format(**fill), paper, a, a_run.predictions, b,
                         b_run.predictions, paper_effect, self.replicate)
        return claims.record(self.out_dir, c)

    def show_claims(self) -> pd.DataFrame:
        """The chapter's claim checks, recomputed from the saved predictions (this replicate; unadjusted for
        multiplicity: the book's claims page pools the replicates and adjusts)."""
        mine = claims.load(self.out_dir, self.name)
        table = claims.table(claims.by_claim(mine), seed=self.data_seed, adjust=False)
        if len(table):
            self.show(table[["claim", "role", "tested as", "this run", "difference [95% CI]", "MDE", "paper inside",
                             "verdict"]], "Claim checks of this chapter (paired bootstrap over patients; one "
                      "training replicate)", uuid=f"claims_{self.name}")
        return table

    def save(self, name: str, obj: dict | pd.DataFrame) -> Path:
        """Write a result of this chapter to ``out_dir/<chapter>/<name>.json`` (or ``.csv`` for a table)."""
        if isinstance(obj, pd.DataFrame):
            path = result_path(self.out_dir, self.name, name, "csv")
            path.parent.mkdir(parents=True, exist_ok=True)
            obj.to_csv(path, index=False)
        else:
            path = result_path(self.out_dir, self.name, name, "json")
            write_json(path, {"chapter": self.name, "profile": self.profile, "dataset": self.source, **obj})
        return path

    def done(self) -> None:
        print(f"wall time: {time.perf_counter() - self.t0:.0f} s")


def as_list(value, cast=str) -> list | None:
    """A papermill list parameter as a list: a list, or a comma-separated string (``-p transforms crop,gamma``,
    ``-p tile_sizes 64,96``); None stays None (the profile's choice)."""
    if value is None:
        return None
    if isinstance(value, str):
        value = [v for v in (s.strip() for s in value.split(",")) if v]
    elif not isinstance(value, (list, tuple)):
        value = [value]
    return [cast(v) for v in value]


#: the papermill parameters that every chapter's ``parameters`` cell defines (chapters add their own grids)
PARAMETERS = ("chapter", "profile", "dataset", "data_dir", "cmmd_dir", "device", "gpus", "seed", "replicate",
              "out_dir", "max_steps", "batch_size", "epochs")


def from_parameters(namespace: dict) -> Chapter:
    """A notebook's one set-up call, ``ch = from_parameters(globals())``: :func:`setup` with the :data:`PARAMETERS`
    of the notebook's namespace. ``chapter`` is the notebook's name, which the book runner sets to the file's stem."""
    missing = [k for k in PARAMETERS if k not in namespace]
    if missing:
        raise NameError(f"the notebook's parameters cell lacks {missing}")
    values = {k: namespace[k] for k in PARAMETERS}
    return setup(values.pop("chapter"), **values)


def setup(name: str, profile: str = "tiny", dataset: str = "CBIS-DDSM", data_dir=None, cmmd_dir=None, device=None,
          seed: int = 0, out_dir=None, max_steps=None, batch_size=None, epochs=None, gpus=None,
          replicate: int = 0) -> Chapter:
    """Resolve a chapter's papermill parameters (the ``parameters`` cell of every notebook has these names).
    ``seed`` draws the dataset; pretraining and evaluation use the training seed ``seed + 1000 * replicate``."""
    sns.set_theme(style="whitegrid", context="notebook")
    prof = resolve(profile)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    data = artefacts.dataset(data_dir, prof, "ddsm", seed=seed)
    train_seed = seed + 1000 * int(replicate)
    pre = {k: v for k, v in {"max_steps": max_steps, "batch_size": batch_size, "seed": train_seed}.items()
           if v is not None}
    evo = {"linear_epochs": epochs, "finetune_epochs": epochs, "supervised_epochs": epochs} if epochs else {}
    out = Path(out_dir) if out_dir else cache_root() / "results" / prof.name
    ch = Chapter(name, prof.name, prof, device, train_seed, data, dataset_label(data_dir, dataset), out, pre, evo,
                 cmmd_dir, gpus, replicate=int(replicate), data_seed=seed)
    claims.reset(out, name)  # this execution records the chapter's claims afresh
    print(f"profile {prof.name}, data: {ch.source}, device {device}")
    return ch
