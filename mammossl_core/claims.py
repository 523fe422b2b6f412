"""Claim checks: a pre-registered claim of the paper set against the evidence of this project's runs, computed from
saved predictions.

A claim compares two models scored on the same test items under the rule that ``preregistration.toml`` registers
for it (:mod:`mammossl_core.preregistration`): ``a`` beats ``b`` (``better``), is not worse by more than a margin
(``noninferior``), or is not better by more than a margin (``no_gain``). Its evidence is the difference
``metric(a) - metric(b)`` on the test items, averaged over the independent training replicates that were run (each
retrains both arms), with a two-level bootstrap interval over patients and replicates
(:func:`mammossl_core.metrics.pooled_paired_difference`). The verdict reads that interval:

* better: ``holds`` when the interval lies above ``margin``; ``contradicted`` when it lies below 0;
* noninferior: ``holds`` when it lies above ``-margin``; ``contradicted`` when it lies below ``-margin``;
* no_gain: ``holds`` when it lies below ``margin``; ``contradicted`` when it lies above ``margin``;
* otherwise ``not shown at this size``.

The primary claim is tested at the plan's level alpha; a secondary claim ``holds`` only if its p-value against its
threshold, Holm-adjusted over the secondary claims, is below alpha as well. Beside each verdict: the minimum
detectable effect at the plan's power, whether the paper's own effect lies inside the interval, and whether the
verdict is fragile (:func:`flip_probability`: an independent execution of the plan would reach the same verdict with
a probability below the plan's power).

A chapter records its claims (:func:`record`) in ``<results>/<chapter>/claims.json`` with a copy of both runs' test
predictions (``<results>/<chapter>/evidence/``: small CSVs), never the verdict, so the results folder is
self-contained; :func:`table` recomputes every verdict from those files.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import norm
from sklearn.metrics import accuracy_score, roc_auc_score

from .io import atomic_path, write_json
from .metrics import PairedDifference, holm, minimum_detectable_effect, pooled_paired_difference
from .preregistration import ClaimRule, Plan, plan
from .results import read_predictions

VERDICTS = ("holds", "not shown at this size", "contradicted")
METRICS = {"auc": roc_auc_score, "accuracy": accuracy_score}


@dataclass(frozen=True)
class Claim:
    """One replicate's evidence for a pre-registered claim (``key``): the statement as the chapter filled it, the
    paper's figures as text and its effect ``a - b`` where it reports one, and the two runs' test predictions (one
    file per run, or one per fold of a cross-validation)."""

    key: str
    chapter: str
    statement: str
    paper: str
    a: str
    a_predictions: list[str]
    b: str
    b_predictions: list[str]
    paper_effect: float | None = None
    replicate: int = 0

    @property
    def rule(self) -> ClaimRule:
        return plan().rule(self.key)


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
    """The evidence for one claim over its replicates: both models' mean metric, the pooled difference with its
    interval, the verdict, the minimum detectable effect, whether the paper's effect lies inside the interval (None
    when the paper reports none) and the p-value against the claim's threshold (Holm-adjusted in :func:`table` for
    secondary claims, which also decides fragility: it needs the whole family)."""

    metric_a: float
    metric_b: float
    difference: PairedDifference
    verdict: str
    mde: float
    paper_inside: bool | None
    p_threshold: float

    def __str__(self) -> str:
        return f"{self.verdict}: {self.metric_a:.3f} vs {self.metric_b:.3f}, {self.difference}"


def _check_files(c: Claim) -> None:
    for p in (*c.a_predictions, *c.b_predictions):
        if not Path(p).is_file():
            raise FileNotFoundError(f"claim {c.statement!r} of {c.chapter}: its predictions {p} are gone; execute the "
                                    "chapter again (mammossl book run --force --only <chapter>)")


def _paired(c: Claim) -> pd.DataFrame:
    """Both runs' test rows of one replicate, paired by item (``score_a``, ``score_b``), in item order."""
    _check_files(c)
    a, b = _test_rows(c.a_predictions), _test_rows(c.b_predictions)
    key = _key(a)
    both = a.merge(b[key + ["score"]], on=key, suffixes=("_a", "_b"))
    if len(both) != len(a) or len(both) != len(b):
        raise ValueError(f"claim {c.statement!r}: the two runs did not score the same test images "
                         f"({len(a)} and {len(b)}, {len(both)} shared)")
    return both.sort_values(key).reset_index(drop=True)


def difference(c: Claim) -> float:
    """One replicate's point difference ``metric(a) - metric(b)`` on its test items (no interval)."""
    both, metric = _paired(c), METRICS[c.rule.metric]
    return float(metric(both.label, both.score_a) - metric(both.label, both.score_b))


def thresholds(rule: ClaimRule) -> tuple[float, float]:
    """``(holds, contradicted)``: the values that the interval's deciding bounds are read against."""
    return {"better": (rule.margin, 0.0), "noninferior": (-rule.margin, -rule.margin),
            "no_gain": (rule.margin, rule.margin)}[rule.kind]


def verdict(low: float, high: float, kind: str = "better", margin: float = 0.0) -> str:
    """The verdict of a ``1 - alpha`` interval ``[low, high]`` of ``a - b`` under the rules of the module docstring."""
    if kind == "better":
        return VERDICTS[0] if low > margin else VERDICTS[2] if high < 0 else VERDICTS[1]
    if kind == "noninferior":
        return VERDICTS[0] if low > -margin else VERDICTS[2] if high < -margin else VERDICTS[1]
    if kind == "no_gain":
        return VERDICTS[0] if high < margin else VERDICTS[2] if low > margin else VERDICTS[1]
    raise ValueError(f"claim kind {kind!r}: use 'better', 'noninferior' or 'no_gain'")


def flip_probability(diff: float, se: float, verdict_now: str, kind: str, margin: float, z_holds: float,
                     z_contradicted: float) -> float:
    """The probability that an independent execution of the plan (a new dataset seed or machine, as many replicates
    and patients) gives another verdict than ``verdict_now``: its estimate is drawn from ``N(diff, 2 se^2)`` (this
    run's estimate and the new one each carry this run's whole error, training and patient sampling; executions on
    one dataset seed differ by less, but across machines by more than the spread of the replicates predicts) and read
    against the claim's thresholds with this run's ``se``, at ``z_holds`` standard errors for "holds" (``z(1 -
    alpha/2)`` for the primary claim, Holm's critical value at its rank for a secondary one) and ``z_contradicted``
    for "contradicted": a normal approximation of the bootstrap's rule.

    >>> round(flip_probability(0.0, 0.01, "not shown at this size", "better", 0.0, 1.96, 1.96), 3)
    0.166
    """
    if not se > 0:
        return 0.0
    hold_at, contra_at = thresholds(ClaimRule("", "", "", kind, margin))
    spread = np.sqrt(2.0) * se
    if kind == "no_gain":  # "holds" below its threshold, "contradicted" above
        p_holds = norm.cdf((hold_at - z_holds * se - diff) / spread)
        p_contra = norm.sf((contra_at + z_contradicted * se - diff) / spread)
    else:
        p_holds = norm.sf((hold_at + z_holds * se - diff) / spread)
        p_contra = norm.cdf((contra_at - z_contradicted * se - diff) / spread)
    same = {VERDICTS[0]: p_holds, VERDICTS[2]: p_contra}.get(verdict_now, 1.0 - p_holds - p_contra)
    return float(min(1.0, max(0.0, 1.0 - same)))


def evidence(replicates: list[Claim], n_boot: int | None = None, seed: int = 0, p: Plan | None = None) -> Evidence:
    """The pooled evidence of one claim's replicates (all of one key, scored on the same test items)."""
    p = p or plan()
    if not replicates or len({c.key for c in replicates}) != 1:
        raise ValueError(f"evidence needs the replicates of one claim, got keys {sorted({c.key for c in replicates})}")
    rule, first = replicates[0].rule, replicates[0]
    pairs = [_paired(c) for c in replicates]
    key = _key(pairs[0])
    for c, d in zip(replicates[1:], pairs[1:]):
        if not d[key].equals(pairs[0][key]):
            raise ValueError(f"claim {c.key!r}: replicate {c.replicate} scored other test items than replicate "
                             f"{first.replicate}")
    both = pairs[0]
    groups = both.patient_id if "patient_id" in both.columns else both.image_id
    metric = METRICS[rule.metric]
    hold_at, _ = thresholds(rule)
    # the p-value against the threshold that "holds" is read at (a two-sided test there matches the interval rule)
    d = pooled_paired_difference(both.label, [x.score_a for x in pairs], [x.score_b for x in pairs], metric,
                                 n_boot or p.bootstrap, p.alpha, seed, groups, threshold=hold_at)
    inside = None if first.paper_effect is None else bool(d.low <= first.paper_effect <= d.high)
    return Evidence(float(np.mean([metric(x.label, x.score_a) for x in pairs])),
                    float(np.mean([metric(x.label, x.score_b) for x in pairs])), d,
                    verdict(d.low, d.high, rule.kind, rule.margin), minimum_detectable_effect(d.se, p.alpha, p.power),
                    inside, d.p)


def record(results_dir: str | Path, claim: Claim) -> Claim:
    """Add ``claim`` to its chapter's ``claims.json`` (replacing one with the same key) with a copy of both runs'
    test predictions under ``<chapter>/evidence/``; returns the claim as recorded (pointing at the copies)."""
    chapter_dir = Path(results_dir) / claim.chapter
    _check_files(claim)
    copies = {}
    for side, paths in (("a", claim.a_predictions), ("b", claim.b_predictions)):
        rows = _test_rows(paths)
        rel = f"evidence/{claim.key}_{side}.csv"
        (chapter_dir / "evidence").mkdir(parents=True, exist_ok=True)
        with atomic_path(chapter_dir / rel) as tmp:
            rows.to_csv(tmp, index=False)
        copies[side] = [rel]
    path = chapter_dir / "claims.json"
    saved = json.loads(path.read_text())["claims"] if path.is_file() else []
    entry = {**asdict(claim), "a_predictions": copies["a"], "b_predictions": copies["b"]}
    saved = [c for c in saved if c.get("key") != claim.key] + [entry]
    write_json(path, {"claims": saved})
    return Claim(**{**entry, "a_predictions": [str(chapter_dir / r) for r in copies["a"]],
                    "b_predictions": [str(chapter_dir / r) for r in copies["b"]]})


def reset(results_dir: str | Path, chapter: str) -> None:
    """Forget the claims and evidence a chapter recorded in an earlier execution (it records them again)."""
    import shutil

    chapter_dir = Path(results_dir) / chapter
    (chapter_dir / "claims.json").unlink(missing_ok=True)
    shutil.rmtree(chapter_dir / "evidence", ignore_errors=True)


def load(results_dir: str | Path, chapter: str | None = None) -> list[Claim]:
    """Every recorded claim under ``results_dir`` (of ``chapter`` only, if given), in chapter order, its evidence
    paths made absolute."""
    out = []
    for path in sorted(Path(results_dir).glob(f"{chapter or '*'}/claims.json")):
        for c in json.loads(path.read_text())["claims"]:
            if "key" not in c:  # recorded before the claims were pre-registered: execute the chapter again
                raise ValueError(f"{path}: a claim without a pre-registered key; execute {path.parent.name} again")
            c["a_predictions"] = [str(path.parent / q) for q in c["a_predictions"]]
            c["b_predictions"] = [str(path.parent / q) for q in c["b_predictions"]]
            out.append(Claim(**c))
    return out


def by_claim(*replicate_sets: list[Claim]) -> dict[str, list[Claim]]:
    """The claims of several results folders (replicates) grouped by key, in the order of the first appearance."""
    out: dict[str, list[Claim]] = {}
    for claims in replicate_sets:
        for c in claims:
            out.setdefault(c.key, []).append(c)
    return out


def table(grouped: dict[str, list[Claim]], n_boot: int | None = None, seed: int = 0, p: Plan | None = None,
          adjust: bool = True) -> pd.DataFrame:
    """One row per claim with its pooled evidence and verdict, recomputed from the saved predictions; with
    ``adjust``, a secondary claim's "holds" needs its Holm-adjusted p-value below alpha as well."""
    p = p or plan()
    rows, secondary = [], []
    for key, reps in grouped.items():
        c, rule = reps[0], reps[0].rule
        e = evidence(reps, n_boot, seed, p)
        if rule.kind == "better":
            tested = f"{c.a} > {c.b}" + (f" by more than {rule.margin:.2f}" if rule.margin else "")
        elif rule.kind == "noninferior":
            tested = f"{c.a} - {c.b} > -{rule.margin:.2f} (non-inferiority)"
        else:
            tested = f"{c.a} - {c.b} < {rule.margin:.2f} (no gain)"
        primary = key == p.primary
        if not primary:
            secondary.append(len(rows))
        rows.append({"chapter": c.chapter, "key": key, "claim": c.statement, "role": "primary" if primary else
                     "secondary", "paper": c.paper, "tested as": tested,
                     "this run": f"{rule.metric} {e.metric_a:.3f} vs {e.metric_b:.3f}",
                     "difference [95% CI]": str(e.difference), "diff": e.difference.diff, "low": e.difference.low,
                     "high": e.difference.high, "se": e.difference.se, "replicate diffs": e.difference.replicates,
                     "replicates": len(reps), "patients": e.difference.groups, "MDE": e.mde,
                     "paper effect": c.paper_effect,
                     "paper inside": "" if e.paper_inside is None else "yes" if e.paper_inside else "no",
                     "p": e.p_threshold, "verdict": e.verdict, "kind": rule.kind, "margin": rule.margin,
                     "note": rule.note})
    df = pd.DataFrame(rows)
    if len(df):
        z_alpha = float(norm.isf(p.alpha / 2))
        df["p (Holm)"], df["z holds"] = df.p, z_alpha
        if secondary and adjust:
            df.loc[secondary, "p (Holm)"] = holm(df.p.iloc[secondary].to_numpy())
            # Holm tests the i-th smallest of m p-values at alpha / (m - i): the critical value of each claim's rank
            rank = np.argsort(np.argsort(df.p.iloc[secondary].to_numpy(), kind="stable"), kind="stable")
            df.loc[secondary, "z holds"] = norm.isf(p.alpha / (2 * (len(secondary) - rank)))
        demoted = (df.verdict == VERDICTS[0]) & (df["p (Holm)"] >= p.alpha)
        df.loc[demoted, "verdict"] = VERDICTS[1]
        df["flip"] = [flip_probability(r["diff"], r["se"], r["verdict"], r["kind"], r["margin"], r["z holds"],
                                       z_alpha) for _, r in df.iterrows()]
        # fragile: an independent execution would reach this verdict with less than the plan's power
        df["fragile"] = df.flip > 1 - p.power
    return df


def markdown_page(df: pd.DataFrame, profile: str, dataset: str, machine: str | None = None,
                  forest: str | None = None, run: str = "") -> str:
    """The book's page of every chapter's claim checks (``machine``: where the chapters ran, with its numerics
    fingerprint, :mod:`mammossl_core.numerics`; ``forest``: the file name of the forest plot beside the page;
    ``run``: which run the verdicts come from)."""
    p = plan()
    counts = df.verdict.value_counts().reindex(list(VERDICTS), fill_value=0) if len(df) else None
    reps = sorted(set(df.replicates)) if len(df) else []
    # the command that runs the missing replicates, only where some are missing
    more = (f"; the plan asks for {p.replicates}: `mammossl book replicates` runs the others"
            if max(reps, default=0) < p.replicates else "")
    lines = ["# Claim checks", "",
             f"Every claim that a chapter tested, under the rule registered for it in "
             f"`mammossl_core/preregistration.toml` (see the pre-registration page), recomputed from the chapters' "
             f"saved predictions when the book was built. Profile: **{profile}**; data: **{dataset}**. A difference "
             f"is model *a* minus model *b* on the same test images, averaged over the training replicates that were "
             f"run ({', '.join(map(str, reps)) or 'none'} here{more}), with a {100 * (1 - p.alpha):.0f}% interval "
             f"from a bootstrap over patients "
             f"(both views and both breasts of a patient move together) and replicates. With one replicate the "
             "interval holds the test sampling only, not the training variance: read such verdicts as provisional.",
             "", *([run, ""] if run else []),
             f"The primary claim (`{p.primary}`) is tested at level {p.alpha}; a secondary claim holds only if its "
             f"p-value, Holm-adjusted over the secondary claims, is below {p.alpha} too. *MDE* is the minimum "
             f"detectable effect at {100 * p.power:.0f}% power; *paper inside* says whether the paper's own effect "
             f"lies inside this run's interval; a *fragile* verdict is one that an independent execution of the plan "
             f"(a new seed or CPU) would reach with a probability below the plan's power ({p.power:.0%}), read from "
             "its pooled estimate, its standard error and the critical value that decided it (for a secondary "
             "claim, Holm's at its rank).", ""]
    if machine:
        lines += [f"Computed on {machine}. The numbers are expected to repeat exactly on a machine with the same "
                  "numerics fingerprint; on other CPUs, whose floating-point kernels round differently, training "
                  "ends elsewhere and the numbers move (the reproducibility page says how far).", ""]
    if counts is not None:
        # the verdicts first, in a table that fits the text column; what each claim was tested against below
        lines += ["Verdicts: " + ", ".join(f"{n} {v}" for v, n in counts.items()) + ".", ""]
        shown = df.assign(**{"#": range(1, len(df) + 1)}, chapter=df.chapter.str[:2],
                          claim=[c + (" **(primary)**" if r == "primary" else "") for c, r in zip(df.claim, df.role)],
                          verdict=[v + (" (fragile)" if f else "") for v, f in zip(df.verdict, df.fragile)],
                          MDE=[f"{m:.3f}" for m in df.MDE])
        lines += [shown[["#", "chapter", "claim", "difference [95% CI]", "verdict"]].to_markdown(index=False), ""]
        if forest:
            lines += [f"![Forest plot of the claims: each replicate's difference, the pooled difference with its "
                      f"interval, the thresholds, and the paper's effect]({forest})", ""]
        lines += ["## How each claim was tested", ""]
        shown["p (Holm)"] = [f"{x:.3g}" for x in df["p (Holm)"]]
        shown["replicates, patients"] = [f"{r}, {n}" for r, n in zip(df.replicates, df.patients)]
        lines += [shown[["#", "tested as", "this run", "MDE", "paper inside", "p (Holm)",
                         "replicates, patients"]].to_markdown(index=False), "",
                  "## The paper's figures for each claim", "",
                  shown[["#", "paper"]].to_markdown(index=False), ""]
        notes = [f"{k + 1}: {n}" for k, n in enumerate(df.note) if n]
        if notes:
            lines += ["Notes: " + "; ".join(notes) + ".", ""]
    else:
        lines += ["No chapter recorded a claim.", ""]
    return "\n".join(lines)


def forest_plot(df: pd.DataFrame, path: str | Path) -> Path:
    """One row per claim: each replicate's difference (dots), the pooled difference with its interval (bar), the
    thresholds the verdict reads (grey ticks) and the paper's effect (red cross), written as a PNG."""
    from matplotlib.figure import Figure  # no pyplot: no backend or global state to touch

    n = len(df)
    fig = Figure(figsize=(8, 0.45 * n + 1.2))
    ax = fig.subplots()
    for i in range(n):
        r, y = df.iloc[i], n - 1 - i
        ax.plot([r["low"], r["high"]], [y, y], color="tab:blue", lw=2.5, solid_capstyle="butt")
        ax.plot(r["diff"], y, "o", color="tab:blue", ms=6)
        if len(r["replicate diffs"]) > 1:
            ax.plot(r["replicate diffs"], [y + 0.25] * len(r["replicate diffs"]), ".", color="0.4", ms=5)
        for t in set(thresholds(plan().rule(r["key"]))):
            ax.plot([t, t], [y - 0.3, y + 0.3], color="0.5", lw=1)
        if r["paper effect"] is not None and r["paper effect"] == r["paper effect"]:  # None or NaN: not reported
            ax.plot(r["paper effect"], y, "x", color="tab:red", ms=7, mew=2)
    ax.axvline(0, color="black", lw=0.8)
    ax.set_yticks(range(n))
    ax.set_yticklabels([f"{k}. {s[:60]}{'...' if len(s) > 60 else ''}" for k, s in
                        zip(range(n, 0, -1), df.claim.iloc[::-1])], fontsize=8)
    ax.set_xlabel("difference a - b (pooled over replicates, 95% interval)")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    return Path(path)
