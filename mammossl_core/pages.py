"""The book's generated pages: every chapter's claim checks (``claims.md``), the seed chapters' findings at every
dataset seed that was run (``seeds.md``), recomputed from the saved predictions when the page is written, and the
pre-registered analysis plan (``preregistration.md``)."""
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
        try:
            recorded = claims.load(res)
        except ValueError:  # a seed run of an older version, before the claims were pre-registered
            rows.setdefault(("", "claims of an older version"), {})[label] = "run the seeds again"
            recorded = []
        for c in recorded:
            if c.chapter[:2] in prof.book.seed_chapters:  # bootstrapped with the run's seed, as its chapter did
                try:
                    e = claims.evidence([c], prof.eval.bootstrap, seed)
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


def replicate_results(chapters_dir: Path, current=lambda rep_dir: True) -> list[Path]:
    """The results folders of the training replicates run beside the book (``book replicates``), in order; a
    replicate for which ``current(its folder)`` is false (executed by other code than the book's) is left out of the
    pooling, with a line naming it."""
    out = []
    for d in sorted((Path(chapters_dir) / "replicates").glob("rep_*"), key=lambda p: int(p.name.split("_")[1])):
        if not (d / "results").is_dir():
            continue
        if current(d):
            out.append(d / "results")
        else:
            print(f"[book] {d} was executed by other code than the book's and is left out of the claims page; run "
                  f"`mammossl book replicates --replicates {d.name.split('_')[1]}` again", flush=True)
    return out


def write_claims_page(results_dir: Path, page: Path, profile: str, dataset: str, seed: int = 0,
                      replicates: list[Path] = (), confirmatory=None) -> Path:
    """The book's page of every chapter's claim checks, recomputed from saved predictions
    (:func:`mammossl_core.claims.table`), with its forest plot beside it: the committed ``confirmatory`` result set
    (:class:`mammossl_core.confirmatory.ResultSet`) pooled over its replicates when it is given and was made by
    today's code; else the book's own results pooled with the development ``replicates``' results folders."""
    from .numerics import fingerprint

    stale = confirmatory is not None and not confirmatory.current
    if confirmatory is not None and not stale:
        df = confirmatory.table()
        profile, seed = confirmatory.profile, confirmatory.seed
        run = (f"These verdicts come from the committed {confirmatory.describe()} (`book/confirmatory/`, made by "
               "`mammossl book confirm`); the chapters show the development run of this build.")
        machine = None
    else:
        sets = [claims.load(results_dir)] + [claims.load(r) for r in replicates]
        df = claims.table(claims.by_claim(*sets), seed=seed)
        fp = fingerprint()
        machine = f"{fp['cpu']}, {fp['threads']} threads, numerics fingerprint `{fp['fingerprint']}`"
        run = (f"These verdicts come from the development run of this build (dataset seed {seed}). "
               + ("The committed confirmatory result set was made by other code than this build's and is not "
                  "shown: run `mammossl book confirm` again." if stale else
                  "No confirmatory result set is committed (`mammossl book confirm` makes one)."))
    forest = claims.forest_plot(df, page.with_name("claims_forest.png")).name if len(df) else None
    page.write_text(claims.markdown_page(df, profile, dataset, machine, forest, run))
    return page


def write_preregistration_page(page: Path) -> Path:
    """The book's page of the pre-registered analysis plan (:mod:`mammossl_core.preregistration`)."""
    from .preregistration import PATH, plan

    p = plan()
    rules = pd.DataFrame([{"key": r.key, "chapter": r.chapter[:2], "statement": r.statement,
                           "role": "primary" if r.key == p.primary else "secondary", "kind": r.kind,
                           "margin": r.margin, "metric": r.metric} for r in p.claims])
    lines = ["# Pre-registration", "",
             "The claims of the book, the rule that decides each, and the analysis, fixed in "
             "`mammossl_core/preregistration.toml` before confirmatory runs; the chapters name their claims by key "
             "and the claims page reads the rules from this file, so no notebook can test a claim under another rule.",
             "", f"* Level: {p.alpha} two-sided ({100 * (1 - p.alpha):.0f}% intervals); minimum detectable effects "
             f"at {100 * p.power:.0f}% power.",
             f"* Primary claim: `{p.primary}`; the secondary claims' p-values are adjusted by {p.multiplicity.title()}'s "
             "method as one family.",
             f"* Evidence: {p.replicates} independent training replicates per claim (training seed "
             "`seed + 1000 r` on the same dataset), pooled by a two-level bootstrap over patients and replicates "
             f"({p.bootstrap} resamples).",
             f"* Fragile: an independent execution of the plan would reach the same verdict with a probability below "
             f"the plan's power, {p.power:.0%} (normal approximation around the pooled estimate, at the critical "
             "value that decided the verdict).",
             f"* Benchmark: synthetic generator {p.benchmark.generator_version} at the `{p.benchmark.profile}` "
             f"profile's settings (digest `{p.benchmark.digest}`), chosen on development seeds by chapter 0's "
             "controls and the supervised baseline, never by SSL results.",
             f"* Development looked at dataset seeds {', '.join(map(str, p.development_seeds))}; the confirmatory "
             f"seeds are {', '.join(map(str, p.confirmatory_seeds))}, and the book's confirmatory run uses "
             f"{p.confirmatory_seed}.", "",
             rules.to_markdown(index=False), "", "The file itself:", "", "```toml", PATH.read_text().rstrip(), "```",
             ""]
    page.write_text("\n".join(lines))
    return page
