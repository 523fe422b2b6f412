"""Claim checks are computed from saved predictions: change a saved prediction, the verdict changes."""
import numpy as np
import pandas as pd
import pytest

from mammossl_core import claims
from mammossl_core.pages import write_claims_page


def _predictions(path, scores, labels, patients):
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"image_id": [f"I{k}" for k in range(len(scores))], "patient_id": patients, "split": "test",
                  "label": labels, "score": scores}).to_csv(path, index=False)
    return str(path)


def test_verdict_rules():
    assert claims.verdict(0.01, 0.2) == "holds"
    assert claims.verdict(-0.01, 0.2) == "not shown at this size"
    assert claims.verdict(-0.2, -0.01) == "contradicted"
    assert claims.verdict(0.01, 0.2, margin=0.05) == "not shown at this size"
    assert claims.verdict(-0.02, 0.03, "equivalent", 0.05) == "holds"
    assert claims.verdict(0.06, 0.1, "equivalent", 0.05) == "contradicted"
    with pytest.raises(ValueError):
        claims.verdict(0, 1, "worse")


def test_claim_page_is_recomputed_from_saved_predictions(tmp_path):
    rng = np.random.default_rng(0)
    n = 120
    labels = (rng.random(n) < 0.4).astype(int)
    patients = [f"P{k // 3}" for k in range(n)]
    good = labels + rng.normal(0, 0.4, n)
    weak = rng.normal(0, 1, n)
    a = _predictions(tmp_path / "runs" / "a" / "predictions.csv", good, labels, patients)
    b = _predictions(tmp_path / "runs" / "b" / "predictions.csv", weak, labels, patients)
    results = tmp_path / "results"
    claims.record(results, claims.Claim("04_whole_image", "a beats b", "0.757 vs 0.709", "a", [a], "b", [b]))
    page = write_claims_page(results, tmp_path / "claims.md", "tiny", "synthetic")
    assert "| holds" in page.read_text() and "a beats b" in page.read_text()
    assert "numerics fingerprint `" in page.read_text()  # where the numbers were computed
    # the saved predictions of a are replaced by weak ones: the page's verdict follows
    _predictions(tmp_path / "runs" / "a" / "predictions.csv", rng.normal(0, 1, n), labels, patients)
    assert "| holds" not in write_claims_page(results, tmp_path / "claims.md", "tiny", "synthetic").read_text()
    # two runs that scored different test images cannot be compared
    _predictions(tmp_path / "runs" / "a" / "predictions.csv", good[:-3], labels[:-3], patients[:-3])
    with pytest.raises(ValueError, match="same test images"):
        claims.table(claims.load(results))


def test_annotated_patch_predictions_pair_by_image_and_lesion(tmp_path):
    """Patch predictions hold a lesion patch and a background patch of the same image: both are kept and paired
    (the one predictions schema: the true class as ``label``, the predicted class as ``score``)."""
    rows = {"image_id": ["I1", "I1", "I2", "I2", "I3", "I3"], "lesion_id": ["L1", "", "L2", "", "L3", ""],
            "patient_id": ["P1", "P1", "P2", "P2", "P3", "P3"], "split": "test", "label": [1, 0, 3, 0, 2, 0]}
    for name, pred in (("a", [1, 0, 3, 0, 2, 0]), ("b", [0, 0, 3, 1, 2, 0])):
        (tmp_path / name).mkdir()
        pd.DataFrame({**rows, "score": pred}).to_csv(tmp_path / name / "predictions.csv", index=False)
    c = claims.Claim("01", "a beats b", "", "a", [str(tmp_path / "a" / "predictions.csv")], "b",
                     [str(tmp_path / "b" / "predictions.csv")], metric="accuracy")
    e = claims.evidence(c, n_boot=50)
    assert e.difference.n == 6 and e.metric_a == 1.0 and e.metric_b == pytest.approx(4 / 6)


def test_seed_page_has_one_column_per_seed_run(tmp_path):
    """The page across dataset seeds: the book's results and each seed folder's, recomputed from their predictions."""
    from mammossl_core.pages import seed_findings, write_seeds_page

    rng = np.random.default_rng(1)
    n = 120
    labels = (rng.random(n) < 0.4).astype(int)
    patients = [f"P{k // 3}" for k in range(n)]
    chapters = tmp_path / "chapters"
    for results, good in ((chapters / "results", True), (chapters / "seeds" / "seed_2" / "results", False)):
        a = _predictions(results / "runs" / "a.csv", labels + rng.normal(0, 0.4 if good else 3, n), labels, patients)
        b = _predictions(results / "runs" / "b.csv", rng.normal(0, 1, n), labels, patients)
        claims.record(results, claims.Claim("04_whole_image", "a beats b", "", "a", [a], "b", [b]))
        claims.record(results, claims.Claim("01_augmentations", "not a seed chapter", "", "a", [a], "b", [b]))
        (results / "04_whole_image" / "localisation.csv").write_text("model,enrichment\nBYOL (frozen) + MIP,3.5\n")
    df = seed_findings(chapters, "tiny")
    assert list(df.columns) == ["chapter", "finding", "seed 0 (the book)", "seed 2"]
    assert list(df.finding) == ["a beats b", "MIP attention enrichment on malignant lesions: BYOL (frozen) + MIP"]
    assert df.iloc[0]["seed 0 (the book)"].startswith("holds") and not df.iloc[0]["seed 2"].startswith("holds")
    assert df.iloc[1]["seed 2"] == "3.50"
    assert "| seed 2" in write_seeds_page(chapters, "tiny", "synthetic").read_text()


def test_a_claim_whose_predictions_are_gone_names_them(tmp_path):
    c = claims.Claim("04_whole_image", "a beats b", "", "a", [str(tmp_path / "gone.csv")], "b", [str(tmp_path / "b.csv")])
    with pytest.raises(FileNotFoundError, match="04_whole_image.*gone.csv.*--force"):
        claims.evidence(c, n_boot=10)
