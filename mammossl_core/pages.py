"""The book's generated pages: every chapter's claim checks (``claims.md``) and the seed chapters' findings at every
dataset seed that was run (``seeds.md``), recomputed from the saved predictions when the page is written."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from . import claims
from .chapter import LOCALISATION, result_path
from .config import resolve


def seed_findings(chapters_dir: Path, profile: str) -> pd.DataFrame:
    """One row per finding of the seed chapters (each claim: verdict and paired difference [95% CI]; chapter 4's
    MIP attention enrichment), one column per dataset seed run (the book's own results first)."""
    prof = resolve(profile)
    runs = {"0 (the book)": (0, chapters_dir / "results")}
    for d in sorted((chapters_dir / "seeds").glob("seed_*"), key=lambda p: int(p.name.split("_")[1])):
        runs[d.name.split("_")[1]] = (int(d.name.split("_")[1]), d / "results")
    rows: dict[tuple[str, str], dict[str, str]] = {}
    for label, (seed, res) in runs.items():
        if not res.is_dir():
            continue
        for c in claims.load(res):
            if c.chapter[:2] in prof.book.seed_chapters:  # bootstrapped with the run's seed, as its chapter did
                try:
                    e = claims.evidence(c, prof.eval.bootstrap, seed)
                except FileNotFoundError:  # a seed run of an earlier cache: say so instead of failing the book
                    rows.setdefault((c.chapter, c.statement), {})[label] = "predictions gone: run the seeds again"
                    continue
                rows.setdefault((c.chapter, c.statement), {})[label] = str(e)
        loc = result_path(res, *LOCALISATION)
        if loc.is_file():
            for r in pd.read_csv(loc).itertuples():
                rows.setdefault((LOCALISATION[0], f"MIP attention enrichment on malignant lesions: {r.model}"),
                                {})[label] = f"{r.enrichment:.2f}"
    return pd.DataFrame([{"chapter": k[0], "finding": k[1], **{f"seed {lab}": v.get(lab, "not run") for lab in runs}}
                         for k, v in rows.items()])


def write_seeds_page(chapters_dir: Path, profile: str, dataset: str) -> Path:
    """The book's page of the seed chapters' findings at every dataset seed that was run (:func:`seed_findings`)."""
    prof = resolve(profile)
    df = seed_findings(chapters_dir, profile)
    seeds = " ".join(str(s) for s in prof.book.other_seeds)
    lines = ["# Across dataset seeds", "",
             f"A finding of one synthetic dataset may be luck. The dataset seed draws a new set of patients, lesions "
             f"and splits, and seeds pretraining and evaluation; chapters {', '.join(prof.book.seed_chapters)} are "
             f"re-executed at other seeds by `mammossl book seeds --profile {profile}` (seeds {seeds}). Each cell is "
             f"the verdict, model *a* vs model *b*, and the paired difference with its 95% interval over test "
             f"patients, recomputed from that run's saved predictions when this page was written. Profile: "
             f"**{profile}**; data: **{dataset}** (synthetic at every seed unless a data folder was given).", ""]
    if len(df) and len(df.columns) > 3:
        lines += [df.to_markdown(index=False), ""]
    elif len(df):
        lines += [f"Only the book's own seed was run for this build; run `mammossl book seeds --profile {profile}` "
                  f"to add seeds {seeds}.", "", df.to_markdown(index=False), ""]
    else:
        lines += ["No chapter of this build recorded a finding for this page.", ""]
    page = chapters_dir / "seeds.md"
    page.write_text("\n".join(lines))
    return page


def write_claims_page(results_dir: Path, page: Path, profile: str, dataset: str, seed: int = 0) -> Path:
    """The book's page of every chapter's claim checks, recomputed from the saved predictions
    (:func:`mammossl_core.claims.table`) with the bootstrap seed the chapters used."""
    from .numerics import fingerprint

    prof = resolve(profile)
    df = claims.table(claims.load(results_dir), prof.eval.bootstrap, seed)
    fp = fingerprint()
    machine = f"{fp['cpu']}, {fp['threads']} threads, numerics fingerprint `{fp['fingerprint']}`"
    page.write_text(claims.markdown_page(df, profile, dataset, machine))
    return page
