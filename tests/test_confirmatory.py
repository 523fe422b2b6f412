"""The committed confirmatory result set: made by today's code, collected per replicate and resumable, pooled on the
claims page, and checked against a re-executed replicate (exactly on its own machine, within the prediction interval
of its replicates on another)."""
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mammossl_core import book, claims, confirmatory, preregistration
from mammossl_core.pages import write_claims_page

#: the two claims the fake chapters record: the primary one (chapter 04) and one of chapter 02
KEYS = ("ssl_beats_random", "tile_96_over_64")


def test_the_committed_confirmatory_set_was_made_by_this_code():
    """Fails when the package source changed after `mammossl book confirm` made the committed set: run it again."""
    s = confirmatory.load()
    if s is None:
        pytest.skip("no confirmatory result set committed (book/confirmatory/)")
    p = preregistration.plan()
    assert s.current, f"{s.root} was made by source {s.source_digest}; run `mammossl book confirm` again"
    assert s.benchmark_digest == p.benchmark.digest and s.profile == p.confirmatory_profile
    assert s.seed == p.confirmatory_seed and s.replicates == tuple(range(p.replicates))
    for r in s.results():
        assert {c.key for c in claims.load(r)} == {c.key for c in p.claims}, r


def _fake_chapters(calls):
    """A stand-in for book.run_notebooks: each chapter of ``only`` records its claim with predictions drawn from
    the replicate (the same replicate gives the same predictions)."""
    def run(profile, params, only, force=False, out_dir=None):
        r = params["replicate"]
        calls.append((profile, params["seed"], r, tuple(only)))
        rng = np.random.default_rng(100 + r)
        labels = (rng.random(240) < 0.4).astype(int)
        patients = [f"P{k // 4}" for k in range(240)]
        for key in KEYS:
            rule = preregistration.plan().rule(key)
            if rule.chapter[:2] not in only:
                continue
            paths = []
            for side, gap in (("a", 0.5 + 0.2 * r), ("b", 0.0)):
                path = out_dir / "cache" / f"{key}_{side}.csv"
                path.parent.mkdir(parents=True, exist_ok=True)
                pd.DataFrame({"image_id": [f"I{k}" for k in range(240)], "patient_id": patients, "split": "test",
                              "label": labels, "score": labels * gap + rng.normal(0, 1, 240)}).to_csv(path, index=False)
                paths.append(str(path))
            claims.record(out_dir / "results", claims.Claim(key, rule.chapter, rule.statement, "paper", "a",
                                                            [paths[0]], "b", [paths[1]], None, r))
        return []
    return run


def test_a_result_set_is_collected_resumed_pooled_and_checked(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(book, "run_notebooks", _fake_chapters(calls))
    monkeypatch.setenv("MAMMOSSL_CACHE", str(tmp_path / "cache"))
    root = tmp_path / "set"
    s = confirmatory.run([0, 1], root=root, seed=100, profile="tiny")
    assert s.replicates == (0, 1) and s.current and calls[0][:3] == ("tiny", 100, 0)
    assert set(calls[0][3]) == set(confirmatory.claim_chapters())
    # resumed: a later replicate joins the manifest, the earlier ones stay
    s = confirmatory.run([2], root=root, seed=100, profile="tiny")
    assert s.replicates == (0, 1, 2) and json.loads((root / "manifest.json").read_text())["seed"] == 100
    assert sorted(p.name for p in (root / "rep_2").iterdir()) == ["02_patch_size", "04_whole_image"]
    assert not list(root.glob(".tmp-*"))
    # the claims page pools the set's three replicates and says where they come from
    text = write_claims_page(tmp_path / "none", tmp_path / "claims.md", "tiny", "synthetic", confirmatory=s).read_text()
    assert "confirmatory run: dataset seed 100, training replicates 0-2" in text and "| 3, 60" in text
    # the check re-executes replicate 0 of the primary claim's chapter: same machine, same numbers
    out = confirmatory.check(root, tmp_path / "check")
    assert [c.key for c in out] == ["ssl_beats_random"] and out[0].same_machine and out[0].ok
    assert calls[-1][2:] == (0, ("04",))
    # on another machine a difference must look like one more replicate of the set
    rerun = claims.load(tmp_path / "check" / "results")
    far = confirmatory.Comparison("x", out[0].pooled + 2 * out[0].tolerance, 0, out[0].pooled, out[0].tolerance, False)
    assert confirmatory.compare(rerun, s, same_machine=False)[0].ok and not far.ok
    # another seed into the same folder is refused; so is a set made by other code, which the page will not pool
    with pytest.raises(ValueError, match="move it away"):
        confirmatory.run([3], root=root, seed=101, profile="tiny")
    monkeypatch.setattr(confirmatory, "source_digest", lambda: "other")
    assert not confirmatory.load(root).current
    with pytest.raises(ValueError, match="made by other code"):
        confirmatory.check(root, tmp_path / "check")
    text = write_claims_page(tmp_path / "none", tmp_path / "claims.md", "tiny", "synthetic",
                             confirmatory=confirmatory.load(root)).read_text()
    assert "made by other code" in text and "No chapter recorded a claim" in text


def test_the_tolerance_is_the_prediction_interval_of_one_more_replicate():
    d = [0.02, 0.05, 0.08, 0.03, 0.07]
    expected = 4.604 * np.std(d, ddof=1) * np.sqrt(1.2)
    assert confirmatory.tolerance(d) == pytest.approx(expected, rel=1e-3)
    assert confirmatory.tolerance([0.1, 0.1, 0.1]) == confirmatory.MIN_TOLERANCE
    assert confirmatory.tolerance([0.1]) == confirmatory.MIN_TOLERANCE


def test_a_confirmatory_run_refuses_a_benchmark_that_is_not_the_registered_one(monkeypatch):
    monkeypatch.setattr(confirmatory, "benchmark_changes", lambda b: ["generator version 9.9, registered 3.1"])
    with pytest.raises(ValueError, match="not the registered one"):
        confirmatory.run([0])


#: the pooled verdicts and estimates of the committed set, recorded by
#: ``MAMMOSSL_UPDATE_EXPECTED=replace .venv/bin/python -m pytest tests/test_confirmatory.py``
EXPECTED = Path(__file__).parent / "expected" / "confirmatory.json"
#: interval ends may move by this many bootstrap standard errors (another NumPy's resampling arithmetic); the point
#: estimates are the predictions' AUCs, the same on every machine
INTERVAL_SE = 0.1


def test_the_pooled_confirmatory_verdicts_are_the_recorded_ones():
    """The claims page's pooled table, recomputed from the committed set, against the recorded one: the same verdicts
    (a fragile one may move one step), point estimates to rounding, interval ends within ``INTERVAL_SE`` standard
    errors. Machine-independent: it reads committed predictions; training on another machine is the check's job."""
    s = confirmatory.load()
    if s is None:
        pytest.skip("no confirmatory result set committed (book/confirmatory/)")
    df = s.table()
    got = {r.key: {"verdict": r.verdict, "fragile": bool(r.fragile), "diff": r.diff, "low": r.low, "high": r.high,
                   "se": r.se, "MDE": r.MDE, "replicates": int(r.replicates)} for r in df.itertuples()}
    if os.environ.get("MAMMOSSL_UPDATE_EXPECTED"):
        EXPECTED.write_text(json.dumps({"set": s.describe(), "claims": got}, indent=1, sort_keys=True) + "\n")
        pytest.skip(f"recorded {EXPECTED}")
    expected = json.loads(EXPECTED.read_text())["claims"]
    assert sorted(got) == sorted(expected)
    for key, e in expected.items():
        g = got[key]
        step = abs(claims.VERDICTS.index(g["verdict"]) - claims.VERDICTS.index(e["verdict"]))
        assert step == 0 or (e["fragile"] and step == 1), (key, g["verdict"], e["verdict"])
        assert g["diff"] == pytest.approx(e["diff"], abs=1e-9), key
        for end in ("low", "high"):
            assert abs(g[end] - e[end]) <= INTERVAL_SE * e["se"], (key, end, g[end], e[end])
