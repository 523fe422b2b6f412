"""End to end at the tiny profile: SSL pretraining, then linear evaluation with GAP and MIP, finetuning, the
supervised baseline, label fractions, cross-validation, patch linear evaluation and the analyses."""
import json

import numpy as np
import pandas as pd
import pytest

from mammossl_core import evaluate as E
from mammossl_core.cli import main


@pytest.fixture(scope="module")
def swav_run(synth_dir, store, tmp_path_factory):
    from mammossl_core.pretrain import pretrain

    out = tmp_path_factory.mktemp("swav")
    pretrain("swav", synth_dir, out, "tiny", progress=False, batch_size=64, epochs=1,
             keep_epoch_checkpoints=True)
    return out


@pytest.mark.slow
def test_linear_gap_and_mip_write_results(synth_dir, swav_run, tmp_path):
    for pooling in ("gap", "mip"):
        r = E.linear_eval(synth_dir, swav_run / "best.pt", pooling, "tiny", tmp_path / pooling, linear_epochs=5)
        assert 0 <= r["auc_low"] <= r["auc"] <= r["auc_high"] <= 1
        pred = pd.read_csv(tmp_path / pooling / "predictions.csv")
        saved = json.loads((tmp_path / pooling / "result.json").read_text())
        test = pred[pred.split == "test"]
        from sklearn.metrics import roc_auc_score

        assert saved["auc"] == pytest.approx(roc_auc_score(test.label, test.score))  # recomputable from the file
    # the frozen grids were cached once and are reused
    caches = list((synth_dir / "cache").glob("grid_*"))
    assert len(caches) >= 1
    again = E.linear_eval(synth_dir, swav_run / "best.pt", "gap", "tiny", None, linear_epochs=5)
    assert again["auc"] == pytest.approx(json.loads((tmp_path / "gap" / "result.json").read_text())["auc"])


@pytest.mark.slow
def test_finetune_supervised_fraction_and_cv(synth_dir, swav_run, tmp_path):
    r = E.finetune(synth_dir, swav_run / "best.pt", "gap", "tiny", tmp_path / "ft", linear_epochs=2, finetune_epochs=1)
    assert r["protocol"] == "finetune" and (tmp_path / "ft" / "linear" / "result.json").is_file()
    s = E.supervised(synth_dir, pooling="gap", profile="tiny", out=tmp_path / "sup", supervised_epochs=1,
                     label_fraction=0.5)
    full = E.load_eval_data(synth_dir).idx("train")
    assert 0.3 * len(full) < s["n_train"] < 0.75 * len(full)
    cv = E.cross_validate(E.linear_eval, synth_dir, 3, out=tmp_path / "cv", checkpoint=swav_run / "best.pt",
                          linear_epochs=2)
    assert len(cv["aucs"]) == 3 and cv["se_auc"] >= 0


def test_label_fraction_is_patient_level_and_stratified(synth_dir):
    ev = E.load_eval_data(synth_dir)
    rows = ev.idx("train")
    sub = E.label_fraction_subset(ev.table, rows, 0.5, seed=0)
    t = ev.table
    kept = set(t.patient_id.iloc[sub])
    # whole patients: every training image of a kept patient is kept
    assert set(t.iloc[rows][t.patient_id.iloc[rows].isin(kept)].index) == set(sub)
    assert E.label_fraction_subset(ev.table, rows, 1.0, 0) is rows


@pytest.mark.slow
def test_patch_linear_eval_and_cli(synth_dir, swav_run, tmp_path, capsys):
    r = E.patch_linear_eval(synth_dir, swav_run / "best.pt", "tiny", tmp_path / "p", linear_epochs=3)
    assert 0 <= r["accuracy"] <= 1
    assert main(["evaluate", "linear", "--data", str(synth_dir), "--checkpoint", str(swav_run), "--pooling", "mip",
                 "--out", str(tmp_path / "cli"), "--epochs", "2", "--device", "cpu"]) == 0
    assert json.loads((tmp_path / "cli" / "result.json").read_text())["pooling"] == "mip"


@pytest.mark.slow
def test_prototypes_and_loss_vs_auc(synth_dir, swav_run, tmp_path):
    from mammossl_core.analysis import prototypes as P
    from mammossl_core.analysis.selection import loss_vs_auc
    from mammossl_core.data.patches import CLASSES, AnnotatedPatches, build_annotated_patches

    model = P.load_swav(swav_run / "best.pt")
    build_annotated_patches(synth_dir, 48, progress=False)
    x, y = AnnotatedPatches(synth_dir, 48).tensors()
    z, q = P.assign(model, x)
    assert q.shape == (len(x), 20) and np.allclose(q.sum(1), 1, atol=1e-5)
    e2, p2 = P.umap_projection(z, P.prototype_vectors(model))
    assert e2.shape == (len(x), 2) and p2.shape == (20, 2)
    near = P.nearest_patches(z, P.prototype_vectors(model), k=3)
    assert near.shape == (20, 3)
    table = P.enrichment(q, y.numpy(), CLASSES)
    assert table.shape == (20, 5) and np.allclose(table.sum(axis=0)[table.sum(axis=0) > 0], 1)
    t = loss_vs_auc(swav_run, synth_dir, linear_epochs=2)
    assert list(t.columns) == ["epoch", "val_loss", "val_auc", "test_auc"] and len(t) >= 1
