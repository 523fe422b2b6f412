"""What the evaluation protocols return and save, as typed records, and the one reader and writer of their files.

An evaluation directory (the ``out`` of :func:`~mammossl_core.evaluate.linear_eval`, ``finetune``, ``supervised``
or :func:`~mammossl_core.patch_eval.patch_linear_eval`) holds ``result.json`` (an :class:`Evaluation`),
``predictions.csv``, ``history.csv`` and the weights (``head.pt`` or ``model.pt``); finetuning keeps its linear
stage in ``linear/``. A cross-validation directory holds ``cv_result.json`` (a :class:`CrossValidation`) and one
evaluation directory per fold (``fold0/`` ...).

``predictions.csv`` has one schema for every protocol, one row per scored item of every split:
``image_id, patient_id, split, label, score``; annotated patches add ``lesion_id`` (an item is a patch), their
``label`` is the true class and their ``score`` the predicted class (:data:`PREDICTION_COLUMNS`).

>>> r = Evaluation.load("runs/swav-mip")   # doctest: +SKIP
>>> r.auc, r.interval, r.predictions        # doctest: +SKIP
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .io import write_csv, write_json

RESULT = "result.json"
CV_RESULT = "cv_result.json"
PREDICTIONS = "predictions.csv"
#: the columns every ``predictions.csv`` starts with
PREDICTION_COLUMNS = ["image_id", "patient_id", "split", "label", "score"]

_NAN = float("nan")


@dataclass
class Evaluation:
    """One evaluation: how the model was made (protocol, encoder, pooling, ...) and how it scored."""

    #: linear, finetune, supervised or patches
    protocol: str
    profile: str = ""
    dataset: str = ""
    seed: int = 0
    #: the pretraining checkpoint (None: a random or supervised encoder)
    checkpoint: str | None = None
    encoder: str | None = None
    method: str | None = None
    pooling: str | None = None
    #: the random encoder's batch-norm statistics: None (its own) or "tiles" (re-estimated)
    bn: str | None = None
    #: finetuning: what its batch norm did
    batchnorm: str | None = None
    label_fraction: float = 1.0
    split: str = "split"
    n_train: int = 0
    mip_hidden: int = 512
    #: pooling heads fitted from independent starts and averaged
    #: (:class:`~mammossl_core.whole_image.WholeImageClassifier`)
    restarts: int = 1
    #: whole images: test AUC with its patient-bootstrap 95% interval, and the validation AUC of the kept state
    auc: float = _NAN
    auc_low: float = _NAN
    auc_high: float = _NAN
    n_test: int = 0
    n_test_patients: int = 0
    val_auc: float = _NAN
    #: annotated patches: 5-class test accuracy and the best validation accuracy
    accuracy: float = _NAN
    val_accuracy: float = _NAN
    #: the directory it was saved in (not saved itself)
    out: str | None = field(default=None, compare=False)

    @property
    def interval(self) -> str:
        """``0.712 [0.650, 0.771]``."""
        return f"{self.auc:.3f} [{self.auc_low:.3f}, {self.auc_high:.3f}]"

    @property
    def directory(self) -> Path:
        if self.out is None:
            raise ValueError(f"this {self.protocol} evaluation was not saved (out=None)")
        return Path(self.out)

    @property
    def predictions(self) -> list[str]:
        """Its ``predictions.csv``, as a list (the form of :attr:`CrossValidation.predictions`)."""
        path = self.directory / PREDICTIONS
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no predictions")
        return [str(path)]

    @property
    def stage1(self) -> "Evaluation | None":
        """Finetuning's first stage (the linear evaluation it starts from), if it was saved."""
        d = self.directory / "linear"
        return Evaluation.load(d) if (d / RESULT).is_file() else None

    def save(self, out: str | os.PathLike, predictions: pd.DataFrame | None = None,
             history: pd.DataFrame | None = None) -> "Evaluation":
        """Write ``result.json`` (and the predictions and history) into ``out``; returns the record with ``out``."""
        out = Path(out)
        if predictions is not None:
            missing = [c for c in PREDICTION_COLUMNS if c not in predictions.columns]
            if missing:
                raise ValueError(f"predictions lack the column(s) {missing}")
            write_csv(out / PREDICTIONS, predictions)
        if history is not None:
            write_csv(out / "history.csv", history)
        return _write(self, out, RESULT)

    @classmethod
    def load(cls, out: str | os.PathLike) -> "Evaluation":
        """The evaluation saved in ``out``; a clear error if ``out`` is not an evaluation directory."""
        return cls.from_dict(_read(out, RESULT, "an evaluation directory (the --out of `mammossl evaluate`)"), out)

    @classmethod
    def from_dict(cls, d: dict, out=None) -> "Evaluation":
        fields = {f.name: f for f in dataclasses.fields(cls) if f.name != "out"}
        # unknown keys are left out; NaN was saved as null
        values = {k: _NAN if v is None and isinstance(fields[k].default, float) else v
                  for k, v in d.items() if k in fields}
        if values.get("checkpoint") == "None":  # written by mammossl < 0.5
            values["checkpoint"] = None
        return cls(**values, out=None if out is None else str(out))

    @staticmethod
    def exists(out: str | os.PathLike) -> bool:
        return (Path(out) / RESULT).is_file()


@dataclass
class CrossValidation:
    """A protocol run on ``folds`` folds of ``folds.csv``: mean test AUC and its standard error over folds."""

    folds: int
    aucs: list[float]
    mean_auc: float
    se_auc: float
    out: str | None = field(default=None, compare=False)

    @classmethod
    def of(cls, aucs: list[float]) -> "CrossValidation":
        k = len(aucs)
        se = float(np.std(aucs, ddof=1) / np.sqrt(k)) if k > 1 else _NAN
        return cls(k, [float(a) for a in aucs], float(np.mean(aucs)), se)

    def fold(self, i: int) -> Evaluation:
        return Evaluation.load(Path(self.out) / f"fold{i}")

    @property
    def predictions(self) -> list[str]:
        """The test predictions of every fold."""
        return [p for i in range(self.folds) for p in self.fold(i).predictions]

    def save(self, out: str | os.PathLike) -> "CrossValidation":
        return _write(self, out, CV_RESULT)

    @classmethod
    def load(cls, out: str | os.PathLike) -> "CrossValidation":
        d = _read(out, CV_RESULT, "a cross-validation directory")
        se = _NAN if d["se_auc"] is None else d["se_auc"]  # NaN (one fold) was saved as null
        return cls(d["folds"], d["aucs"], d["mean_auc"], se, out=str(out))

    @staticmethod
    def exists(out: str | os.PathLike) -> bool:
        return (Path(out) / CV_RESULT).is_file()


def _write(record, out: str | os.PathLike, name: str):
    """``record`` as ``out/name`` (NaN as null, its ``out`` left out); returns it with ``out`` set."""
    write_json(Path(out) / name, {k: None if isinstance(v, float) and math.isnan(v) else v
                                  for k, v in dataclasses.asdict(record).items() if k != "out"})
    record.out = str(out)
    return record


def _read(out: str | os.PathLike, name: str, what: str) -> dict:
    """The saved ``out/name``; a clear error if it is missing."""
    path = Path(out) / name
    if not path.is_file():
        raise FileNotFoundError(f"{out}: not {what} (no {name})")
    return json.loads(path.read_text())


def load(out: str | os.PathLike) -> Evaluation | CrossValidation:
    """Whatever was saved in ``out``: a cross-validation or one evaluation."""
    return CrossValidation.load(out) if CrossValidation.exists(out) else Evaluation.load(out)


def read_predictions(paths: list[str]) -> pd.DataFrame:
    """The rows of one or more ``predictions.csv`` (identifiers kept as strings)."""
    return pd.concat([pd.read_csv(p, dtype={"image_id": str, "patient_id": str, "lesion_id": str}) for p in paths],
                     ignore_index=True)
