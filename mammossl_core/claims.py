"""Claim checks: a claim of the paper set against this run's evidence, computed from saved predictions.

A claim compares two models scored on the same test images: ``a`` should beat ``b`` (``kind="better"``), or the two
should not differ (``kind="equivalent"``). The evidence is the paired bootstrap of the metric difference over
patients (:func:`mammossl_core.metrics.paired_difference`), read from the two runs' ``predictions.csv`` (test rows; the
test parts of every fold for cross-validation), and the verdict follows from its 95% interval:

* better: ``holds`` when the interval lies above ``margin``; ``contradicted`` when it lies below 0;
  otherwise ``not shown at this size``;
* equivalent: ``holds`` when the interval lies within ``±margin``; ``contradicted`` when it lies wholly outside;
  otherwise ``not shown at this size``.

A chapter records its claims (:func:`record`) in ``<results>/<chapter>/claims.json``: the statement, the paper's
figures, the two prediction files and the rule, never the verdict. :func:`table` recomputes every verdict from the
saved predictions, so the book's summary page cannot disagree with them.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd
from sklearn.metrics import accuracy_score, roc_auc_score

from .io import write_json
from .metrics import PairedDifference, paired_difference
from .results import read_predictions

VERDICTS = ("holds", "not shown at this size", "contradicted")
METRICS = {"auc": roc_auc_score, "accuracy": accuracy_score}


@dataclass(frozen=True)
class Claim:
    """One claim of the paper and where this run's evidence for it is."""

    chapter: str
    statement: str
    #: the paper's own figures for it, as text built from :mod:`mammossl_core.paper`
    paper: str
    a: str
    a_predictions: list[str]
    b: str
    b_predictions: list[str]
    kind: str = "better"
    margin: float = 0.0
    metric: str = "auc"


def _test_rows(paths: list[str]) -> pd.DataFrame:
    """Test rows of one or more ``predictions.csv`` (several: the folds of a cross-validation), one per item."""
    df = read_predictions(paths)
    df = df[df.split == "test"].reset_index(drop=True)
    if df[_key(df)].duplicated().any():
        raise ValueError(f"{paths}: an item is in the test rows twice")
    return df


def _key(df: pd.DataFrame) -> list[str]:
    """What identifies a scored item: the image, and for annotated patches also the lesion (one patch per lesion
    and one background patch per image)."""
    return ["image_id"] + (["lesion_id"] if "lesion_id" in df.columns else [])


@dataclass(frozen=True)
class Evidence:
    """This run's evidence for a claim: both models' metric on the shared test items, their paired difference with
    its interval, and the verdict."""

    metric_a: float
    metric_b: float
    difference: PairedDifference
    verdict: str

    def __str__(self) -> str:
        return f"{self.verdict}: {self.metric_a:.3f} vs {self.metric_b:.3f}, {self.difference}"


def evidence(claim: Claim, n_boot: int = 2000, seed: int = 0) -> Evidence:
    """The paired difference ``metric(a) - metric(b)`` on the test images both runs scored, and the verdict."""
    for p in (*claim.a_predictions, *claim.b_predictions):
        if not Path(p).is_file():
            raise FileNotFoundError(f"claim {claim.statement!r} of {claim.chapter}: its predictions {p} are gone "
                                    "(the artefact cache was cleared?); execute the chapter again "
                                    "(mammossl book run --force --only <chapter>)")
    a, b = _test_rows(claim.a_predictions), _test_rows(claim.b_predictions)
    key = _key(a)
    both = a.merge(b[key + ["score"]], on=key, suffixes=("_a", "_b"))
    if len(both) != len(a) or len(both) != len(b):
        raise ValueError(f"claim {claim.statement!r}: the two runs did not score the same test images "
                         f"({len(a)} and {len(b)}, {len(both)} shared)")
    groups = both.patient_id if "patient_id" in both.columns else both.image_id
    metric = METRICS[claim.metric]
    d = paired_difference(both.label, both.score_a, both.score_b, metric, n_boot=n_boot, seed=seed, groups=groups)
    return Evidence(float(metric(both.label, both.score_a)), float(metric(both.label, both.score_b)), d,
                    verdict(d.low, d.high, claim.kind, claim.margin))


def verdict(low: float, high: float, kind: str = "better", margin: float = 0.0) -> str:
    """The verdict of a 95% interval ``[low, high]`` of ``a - b`` under the rule of the module docstring."""
    if kind == "better":
        return VERDICTS[0] if low > margin else VERDICTS[2] if high < 0 else VERDICTS[1]
    if kind == "equivalent":
        if -margin < low and high < margin:
            return VERDICTS[0]
        return VERDICTS[2] if (low > margin or high < -margin) else VERDICTS[1]
    raise ValueError(f"claim kind {kind!r}: use 'better' or 'equivalent'")


def record(results_dir: str | Path, claim: Claim) -> Path:
    """Add ``claim`` to its chapter's ``claims.json`` (replacing one with the same statement)."""
    path = Path(results_dir) / claim.chapter / "claims.json"
    saved = json.loads(path.read_text())["claims"] if path.is_file() else []
    saved = [c for c in saved if c["statement"] != claim.statement] + [asdict(claim)]
    write_json(path, {"claims": saved})
    return path


def load(results_dir: str | Path) -> list[Claim]:
    """Every recorded claim under ``results_dir``, in chapter order."""
    out = []
    for path in sorted(Path(results_dir).glob("*/claims.json")):
        out += [Claim(**c) for c in json.loads(path.read_text())["claims"]]
    return out


def table(claims: list[Claim], n_boot: int = 2000, seed: int = 0) -> pd.DataFrame:
    """One row per claim with this run's evidence and verdict, recomputed from the saved predictions."""
    rows = []
    for c in claims:
        e = evidence(c, n_boot, seed)
        rule = (f"{c.a} > {c.b}" + (f" by more than {c.margin:.2f}" if c.margin else "") if c.kind == "better"
                else f"-{c.margin:.2f} < {c.a} - {c.b} < {c.margin:.2f}")
        rows.append({"chapter": c.chapter, "claim": c.statement, "paper": c.paper, "tested as": rule,
                     "this run": f"{c.metric} {e.metric_a:.3f} vs {e.metric_b:.3f}",
                     "difference [95% CI]": str(e.difference), "patients": e.difference.groups, "verdict": e.verdict})
    return pd.DataFrame(rows)


def markdown_page(df: pd.DataFrame, profile: str, dataset: str, machine: str | None = None) -> str:
    """The book's page of every chapter's claim checks (``machine``: where the chapters ran, with its numerics
    fingerprint, :mod:`mammossl_core.numerics`)."""
    counts = df.verdict.value_counts().reindex(list(VERDICTS), fill_value=0) if len(df) else None
    lines = ["# Claim checks", "",
             f"Every claim that a chapter tested, recomputed from the chapters' saved predictions when the book was "
             f"built. Profile: **{profile}**; data: **{dataset}**. A difference is model *a* minus model *b* on the "
             "same test images, with a 95% interval from a paired bootstrap over patients (both views and both "
             "breasts of a patient move together). The verdict rules are in `mammossl_core/claims.py`.", ""]
    if machine:
        lines += [f"Computed on {machine}. The numbers are expected to repeat exactly on a machine with the same "
                  "numerics fingerprint; on other CPUs, whose floating-point kernels round differently, training "
                  "ends elsewhere and the numbers move (the reproducibility page says how far).", ""]
    if counts is not None:
        # the verdicts first, in a table that fits the text column; what each claim was tested against below
        lines += ["Verdicts: " + ", ".join(f"{n} {v}" for v, n in counts.items()) + ".", ""]
        numbered = df.assign(**{"#": range(1, len(df) + 1)}, chapter=df.chapter.str[:2])
        lines += [numbered[["#", "chapter", "claim", "difference [95% CI]", "verdict"]].to_markdown(index=False), "",
                  "## How each claim was tested", ""]
        lines += [numbered[["#", "paper", "tested as", "this run", "patients"]].to_markdown(index=False), ""]
    else:
        lines += ["No chapter recorded a claim.", ""]
    return "\n".join(lines)


