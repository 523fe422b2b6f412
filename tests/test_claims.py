"""Claim checks are computed from saved predictions under the pre-registered rules: change a saved prediction, the
verdict changes; replicates pool; secondary claims are adjusted for multiplicity; the evidence needs no cache."""
import dataclasses
import shutil

import numpy as np
import pandas as pd
import pytest

from mammossl_core import claims, preregistration
from mammossl_core.pages import write_claims_page, write_preregistration_page


def _predictions(path, scores, labels, patients):
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"image_id": [f"I{k}" for k in range(len(scores))], "patient_id": patients, "split": "test",
                  "label": labels, "score": scores}).to_csv(path, index=False)
    return str(path)


def _claim(key, a, b, replicate=0, paper_effect=None):
    rule = preregistration.plan().rule(key)
    return claims.Claim(key, rule.chapter, rule.statement, "paper text", "a", [a], "b", [b], paper_effect, replicate)


def _data(rng, n=120):
    labels = (rng.random(n) < 0.4).astype(int)
    return labels, [f"P{k // 3}" for k in range(n)]


def test_verdict_rules():
    assert claims.verdict(0.01, 0.2) == "holds"
    assert claims.verdict(-0.01, 0.2) == "not shown at this size"
    assert claims.verdict(-0.2, -0.01) == "contradicted"
    assert claims.verdict(0.01, 0.2, margin=0.05) == "not shown at this size"
    assert claims.verdict(-0.04, 0.2, "noninferior", 0.05) == "holds"
    assert claims.verdict(-0.06, 0.2, "noninferior", 0.05) == "not shown at this size"
    assert claims.verdict(-0.2, -0.06, "noninferior", 0.05) == "contradicted"
    assert claims.verdict(-0.3, 0.04, "no_gain", 0.05) == "holds"
    assert claims.verdict(0.06, 0.1, "no_gain", 0.05) == "contradicted"
    with pytest.raises(ValueError):
        claims.verdict(0, 1, "worse")


def test_the_plan_is_checked(tmp_path):
    p = preregistration.plan()
    assert p.rule(p.primary).chapter == "04_whole_image" and {r.kind for r in p.claims} == set(preregistration.KINDS)
    text = preregistration.PATH.read_text()
    bad = tmp_path / "plan.toml"
    bad.write_text(text.replace("confirmatory_seeds = [7301", "confirmatory_seeds = [0"))
    with pytest.raises(ValueError, match="both development and confirmatory"):
        preregistration.load(bad)
    bad.write_text(text.replace('kind = "no_gain"', 'kind = "equivalent"'))
    with pytest.raises(ValueError, match="larger_encoder_no_gain"):
        preregistration.load(bad)
    with pytest.raises(KeyError, match="not pre-registered"):
        p.rule("something_else")


def test_claim_page_is_recomputed_from_saved_predictions_without_the_cache(tmp_path):
    rng = np.random.default_rng(0)
    labels, patients = _data(rng)
    good, weak = labels + rng.normal(0, 0.4, len(labels)), rng.normal(0, 1, len(labels))
    a = _predictions(tmp_path / "cache" / "a" / "predictions.csv", good, labels, patients)
    b = _predictions(tmp_path / "cache" / "b" / "predictions.csv", weak, labels, patients)
    results = tmp_path / "results"
    claims.record(results, _claim("ssl_beats_random", a, b))
    shutil.rmtree(tmp_path / "cache")  # the results folder holds its own copy of the evidence
    page = write_claims_page(results, tmp_path / "claims.md", "tiny", "synthetic")
    text = page.read_text()
    assert "| holds" in text and "SSL pretraining gives" in text and "numerics fingerprint `" in text
    assert (tmp_path / "claims_forest.png").stat().st_size > 1000 and "claims_forest.png" in text
    # the saved evidence of a is replaced by weak scores: the page's verdict follows
    _predictions(results / "04_whole_image" / "evidence" / "ssl_beats_random_a.csv", rng.normal(0, 1, len(labels)),
                 labels, patients)
    assert "| holds" not in write_claims_page(results, tmp_path / "claims.md", "tiny", "synthetic").read_text()
    # two runs that scored different test images cannot be compared
    _predictions(results / "04_whole_image" / "evidence" / "ssl_beats_random_a.csv", good[:-3], labels[:-3],
                 patients[:-3])
    with pytest.raises(ValueError, match="same test images"):
        claims.table(claims.by_claim(claims.load(results)))


def test_replicates_pool_into_one_row_and_each_one_counts(tmp_path):
    rng = np.random.default_rng(2)
    labels, patients = _data(rng, 150)
    sets = []
    for r, gap in enumerate((0.9, 0.3, 0.6)):
        a = _predictions(tmp_path / f"r{r}" / "a.csv", labels * gap + rng.normal(0, 1, 150), labels, patients)
        b = _predictions(tmp_path / f"r{r}" / "b.csv", rng.normal(0, 1, 150), labels, patients)
        sets.append([claims.record(tmp_path / f"res{r}", _claim("tile_96_over_64", a, b, r, paper_effect=0.05))])
    df = claims.table(claims.by_claim(*sets), n_boot=400)
    assert len(df) == 1 and df.replicates.iloc[0] == 3 and len(df["replicate diffs"].iloc[0]) == 3
    assert df["diff"].iloc[0] == pytest.approx(np.mean(df["replicate diffs"].iloc[0]))
    assert df.MDE.iloc[0] == pytest.approx(2.8016 * df.se.iloc[0], rel=1e-3)
    assert df["paper inside"].iloc[0] in ("yes", "no")
    one = claims.table(claims.by_claim(sets[0]), n_boot=400)
    assert one.se.iloc[0] < df.se.iloc[0] or one["diff"].iloc[0] != df["diff"].iloc[0]
    # a replicate that scored other test items is refused
    odd = _predictions(tmp_path / "odd" / "a.csv", labels[:-3], labels[:-3], patients[:-3])
    oddb = _predictions(tmp_path / "odd" / "b.csv", labels[:-3], labels[:-3], patients[:-3])
    with pytest.raises(ValueError, match="other test items"):
        claims.evidence(sets[0] + [claims.record(tmp_path / "resodd", _claim("tile_96_over_64", odd, oddb, 9))])


def test_secondary_claims_are_holm_adjusted_and_fragile_verdicts_marked(tmp_path):
    """Two secondary claims whose unadjusted intervals just exclude 0 lose "holds" under Holm; the primary claim
    keeps its own level."""
    rng = np.random.default_rng(4)
    labels, patients = _data(rng, 300)
    found = []
    for seed in range(40):  # a pair of score sets whose difference sits near p = 0.03
        r = np.random.default_rng(seed)
        a, b = labels * 0.35 + r.normal(0, 1, 300), labels * 0.0 + r.normal(0, 1, 300)
        pa = _predictions(tmp_path / f"s{seed}" / "a.csv", a, labels, patients)
        pb = _predictions(tmp_path / f"s{seed}" / "b.csv", b, labels, patients)
        e = claims.evidence([_claim("tile_96_over_64", pa, pb)], n_boot=1000)
        if 0.012 < e.p_threshold < 0.045 and e.verdict == "holds":
            found.append((pa, pb))
        if len(found) == 2:
            break
    assert len(found) == 2
    grouped = {"tile_96_over_64": [_claim("tile_96_over_64", *found[0])],
               "mip_over_gap_swav": [_claim("mip_over_gap_swav", *found[1])],
               "ssl_beats_random": [_claim("ssl_beats_random", *found[0])]}
    raw = claims.table(grouped, n_boot=1000, adjust=False)
    adj = claims.table(grouped, n_boot=1000)
    assert (raw.verdict == "holds").all()
    assert list(adj.verdict) == ["not shown at this size", "not shown at this size", "holds"]  # primary: alpha
    assert (adj["p (Holm)"].iloc[:2] >= raw.p.iloc[:2]).all()
    # p-values near alpha: an independent execution would reach each verdict with less than the plan's power; a
    # plan asking for near-certainty marks all of them fragile, one content with a coin toss marks none
    assert (adj.flip > 1 - preregistration.plan().power).all() and adj.fragile.all()
    assert claims.table(grouped, n_boot=1000, p=dataclasses.replace(preregistration.plan(), power=0.9999)
                        ).fragile.all()
    assert not claims.table(grouped, n_boot=1000, p=dataclasses.replace(preregistration.plan(), power=0.01)
                            ).fragile.any()


@pytest.mark.parametrize("kind, margin", [("better", 0.0), ("better", 0.02), ("noninferior", 0.05),
                                          ("no_gain", 0.05)])
def test_the_flip_probability_is_the_verdict_rule_under_a_redrawn_estimate(kind, margin):
    """flip_probability against a simulation: redraw the estimate from N(d, 2 se^2), apply the interval rule of
    claims.verdict, count the verdicts that differ from the one at d."""
    rng = np.random.default_rng(0)
    se, z = 0.02, 1.96
    for d in (-0.06, -0.03, 0.0, 0.01, 0.04, 0.08):
        now = claims.verdict(d - z * se, d + z * se, kind, margin)
        redrawn = rng.normal(d, np.sqrt(2) * se, 200_000)
        low, high = redrawn - z * se, redrawn + z * se
        sim = np.mean([claims.verdict(lo, hi, kind, margin) != now for lo, hi in zip(low[:20000], high[:20000])])
        got = claims.flip_probability(d, se, now, kind, margin, z, z)
        assert got == pytest.approx(sim, abs=0.012), (d, now)


def test_the_benchmark_is_the_registered_one():
    """The generator and the profile's dataset settings are the ones registered before the confirmatory runs: a
    change to the generator's source or to a synthetic setting fails here until a new version is registered."""
    b = preregistration.plan().benchmark
    assert not preregistration.benchmark_changes(b), preregistration.benchmark_changes(b)
    # the digest sees a setting of the profile and the generator's version
    moved = dataclasses.replace(b, digest=preregistration.benchmark_digest("paper"), generator_version="0.9")
    assert len(preregistration.benchmark_changes(moved)) == 2


def test_the_preregistration_page_renders_the_file(tmp_path):
    text = write_preregistration_page(tmp_path / "prereg.md").read_text()
    assert "ssl_beats_random" in text and "```toml" in text and "7301" in text
    assert f"generator {preregistration.plan().benchmark.generator_version}" in text


def test_annotated_patch_predictions_pair_by_image_and_lesion(tmp_path):
    """Patch predictions hold a lesion patch and a background patch of the same image: both are kept and paired
    (the one predictions schema: the true class as ``label``, the predicted class as ``score``)."""
    rows = {"image_id": ["I1", "I1", "I2", "I2", "I3", "I3"], "lesion_id": ["L1", "", "L2", "", "L3", ""],
            "patient_id": ["P1", "P1", "P2", "P2", "P3", "P3"], "split": "test", "label": [1, 0, 3, 0, 2, 0]}
    for name, pred in (("a", [1, 0, 3, 0, 2, 0]), ("b", [0, 0, 3, 1, 2, 0])):
        (tmp_path / name).mkdir()
        pd.DataFrame({**rows, "score": pred}).to_csv(tmp_path / name / "predictions.csv", index=False)
    c = _claim("byol_over_simclr", str(tmp_path / "a" / "predictions.csv"), str(tmp_path / "b" / "predictions.csv"))
    e = claims.evidence([c], n_boot=50)
    assert e.difference.n == 6 and e.metric_a == 1.0 and e.metric_b == pytest.approx(4 / 6)


def test_seed_page_has_one_column_per_seed_run(tmp_path):
    """The page across dataset seeds: the book's results and each seed folder's, recomputed from their predictions."""
    from mammossl_core.pages import seed_findings, write_seeds_page

    rng = np.random.default_rng(1)
    labels, patients = _data(rng)
    chapters = tmp_path / "chapters"
    for results, good in ((chapters / "results", True), (chapters / "seeds" / "seed_2" / "results", False)):
        a = _predictions(tmp_path / "runs" / f"{good}a.csv", labels + rng.normal(0, 0.4 if good else 3, len(labels)),
                         labels, patients)
        b = _predictions(tmp_path / "runs" / f"{good}b.csv", rng.normal(0, 1, len(labels)), labels, patients)
        claims.record(results, _claim("ssl_beats_random", a, b))
        claims.record(results, _claim("random_crop", a, b))
        (results / "04_whole_image" / "localisation.csv").write_text("model,enrichment\nBYOL (frozen) + MIP,3.5\n")
    df = seed_findings(chapters, "tiny")
    assert list(df.columns) == ["chapter", "finding", "seed 0 (the book)", "seed 2"]
    assert list(df.finding) == [preregistration.plan().rule("ssl_beats_random").statement,
                                "MIP attention enrichment on malignant lesions: BYOL (frozen) + MIP"]
    assert df.iloc[0]["seed 0 (the book)"].startswith("holds") and not df.iloc[0]["seed 2"].startswith("holds")
    assert df.iloc[1]["seed 2"] == "3.50"
    assert "| seed 2" in write_seeds_page(chapters, "tiny", "synthetic").read_text()


def test_a_claim_whose_predictions_are_gone_names_them(tmp_path):
    c = _claim("ssl_beats_random", str(tmp_path / "gone.csv"), str(tmp_path / "b.csv"))
    with pytest.raises(FileNotFoundError, match="04_whole_image.*gone.csv.*--force"):
        claims.evidence([c], n_boot=10)


def test_a_chapter_executed_again_records_its_claims_afresh(tmp_path):
    rng = np.random.default_rng(3)
    labels, patients = _data(rng)
    a = _predictions(tmp_path / "a.csv", rng.normal(0, 1, len(labels)), labels, patients)
    claims.record(tmp_path / "res", _claim("ssl_beats_random", a, a))
    claims.record(tmp_path / "res", _claim("random_crop", a, a))
    claims.reset(tmp_path / "res", "04_whole_image")
    assert [c.key for c in claims.load(tmp_path / "res")] == ["random_crop"]
    assert not (tmp_path / "res" / "04_whole_image" / "evidence").exists()


def test_a_seed_run_of_an_older_version_asks_to_be_run_again(tmp_path):
    from mammossl_core.pages import seed_findings

    old = tmp_path / "chapters" / "seeds" / "seed_2" / "results" / "04_whole_image"
    old.mkdir(parents=True)
    (old / "claims.json").write_text('{"claims": [{"chapter": "04_whole_image", "statement": "a beats b"}]}')
    (tmp_path / "chapters" / "results").mkdir()
    df = seed_findings(tmp_path / "chapters", "tiny")
    assert df["seed 2"].tolist() == ["run the seeds again"]
