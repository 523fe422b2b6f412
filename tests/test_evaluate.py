"""End to end at the tiny profile: SSL pretraining, then linear evaluation with GAP and MIP, finetuning, the
supervised baseline, label fractions, cross-validation, patch linear evaluation and the analyses."""
import json

import numpy as np
import pandas as pd
import pytest

from mammossl_core import evaluate as E
from mammossl_core.cli import main
from mammossl_core.config import get_profile
from mammossl_core.evaldata import label_fraction_subset, load_eval_data
from mammossl_core.patch_eval import patch_embeddings, patch_linear_eval
from mammossl_core.results import PREDICTION_COLUMNS, CrossValidation, Evaluation


@pytest.fixture(scope="module")
def swav_run(synth_dir, store, tmp_path_factory):
    from mammossl_core.pretrain import pretrain

    out = tmp_path_factory.mktemp("swav")
    pretrain("swav", synth_dir, out, "tiny", progress=False, batch_size=64, epochs=1,
             keep_epoch_checkpoints=True)
    return out


@pytest.mark.slow
def test_linear_gap_and_mip_write_results(synth_dir, swav_run, tmp_path, cache_root):
    for pooling in ("gap", "mip"):
        r = E.linear_eval(synth_dir, swav_run / "best.pt", pooling, "tiny", tmp_path / pooling, linear_epochs=5)
        assert 0 <= r.auc_low <= r.auc <= r.auc_high <= 1
        pred = pd.read_csv(tmp_path / pooling / "predictions.csv")
        saved = Evaluation.load(tmp_path / pooling)
        test = pred[pred.split == "test"]
        from sklearn.metrics import roc_auc_score

        assert saved.auc == pytest.approx(roc_auc_score(test.label, test.score))  # recomputable from the file
        assert saved == r and list(pred.columns[:5]) == PREDICTION_COLUMNS
    # the frozen grids were cached once and are reused
    caches = list((cache_root / "grids").glob("grid_*"))
    assert len(caches) >= 1 and not (synth_dir / "cache").exists()  # caches never go into the dataset
    again = E.linear_eval(synth_dir, swav_run / "best.pt", "gap", "tiny", None, linear_epochs=5)
    assert again.auc == pytest.approx(Evaluation.load(tmp_path / "gap").auc)


@pytest.mark.slow
def test_finetune_supervised_fraction_and_cv(synth_dir, swav_run, tmp_path):
    r = E.finetune(synth_dir, swav_run / "best.pt", "gap", "tiny", tmp_path / "ft", linear_epochs=2, finetune_epochs=1)
    assert r.protocol == "finetune" and r.stage1.protocol == "linear"
    s = E.supervised(synth_dir, pooling="gap", profile="tiny", out=tmp_path / "sup", supervised_epochs=1,
                     label_fraction=0.5)
    full = load_eval_data(synth_dir).idx("train")
    assert 0.3 * len(full) < s.n_train < 0.75 * len(full)
    cv = E.cross_validate(E.linear_eval, synth_dir, 3, out=tmp_path / "cv", checkpoint=swav_run / "best.pt",
                          linear_epochs=2)
    assert len(cv.aucs) == 3 and cv.se_auc >= 0 and CrossValidation.load(tmp_path / "cv") == cv
    assert len(cv.predictions) == 3 and cv.fold(1).split == "fold1"


def _fold0_without_malignant(synth_dir, tmp_path, part: str):
    """A copy of the session dataset whose fold 0 moved every malignant image of ``part`` to training."""
    import shutil

    data = tmp_path / "ds"
    shutil.copytree(synth_dir, data)
    folds = pd.read_csv(data / "folds.csv", dtype=str)
    labels = pd.read_csv(data / "images.csv", dtype={"image_id": str}).set_index("image_id").label
    folds.loc[(folds.fold0 == part) & (folds.image_id.map(labels) == 1).to_numpy(), "fold0"] = "train"
    folds.to_csv(data / "folds.csv", index=False)
    return data


def test_a_fold_whose_test_part_has_one_class_is_refused_by_name(synth_dir, store, tmp_path):
    from mammossl_core.data.layout import DataError

    data = _fold0_without_malignant(synth_dir, tmp_path, "test")
    with pytest.raises(DataError, match=r"folds.csv \(fold0\): the test part holds one class only"):
        load_eval_data(data, "fold0")
    assert load_eval_data(data, "fold1").table.split.nunique() == 3  # the other folds are untouched


def test_label_fraction_is_patient_level_and_stratified(synth_dir):
    ev = load_eval_data(synth_dir)
    rows = ev.idx("train")
    sub = label_fraction_subset(ev.table, rows, 0.5, seed=0)
    t = ev.table
    kept = set(t.patient_id.iloc[sub])
    # whole patients: every training image of a kept patient is kept
    assert set(t.iloc[rows][t.patient_id.iloc[rows].isin(kept)].index) == set(sub)
    assert label_fraction_subset(ev.table, rows, 1.0, 0) is rows


@pytest.mark.slow
def test_patch_linear_eval_and_cli(synth_dir, swav_run, tmp_path, capsys):
    r = patch_linear_eval(synth_dir, swav_run / "best.pt", "tiny", tmp_path / "p", linear_epochs=3)
    assert 0 <= r.accuracy <= 1
    pred = pd.read_csv(r.predictions[0])  # the one predictions schema: true class as label, predicted as score
    assert set(PREDICTION_COLUMNS) <= set(pred.columns) and set(pred.score) <= set(range(5))
    assert main(["evaluate", "linear", "--data", str(synth_dir), "--checkpoint", str(swav_run), "--pooling", "mip",
                 "--out", str(tmp_path / "cli"), "--epochs", "2", "--device", "cpu"]) == 0
    assert Evaluation.load(tmp_path / "cli").pooling == "mip"
    # the analyses from the command line
    common = ["--data", str(synth_dir), "--device", "cpu"]
    assert main(["analyse", "attention", "--linear-out", str(tmp_path / "cli"), "--out", str(tmp_path / "att"),
                 *common]) == 0
    loc = json.loads((tmp_path / "att" / "localisation.json").read_text())
    assert (tmp_path / "att" / "heatmaps.png").is_file() and 0 <= loc["attention_on_lesion"] <= 1
    assert main(["analyse", "prototypes", "--checkpoint", str(swav_run), "--tiles", "300", "--out",
                 str(tmp_path / "proto"), *common]) == 0
    assert {p.name for p in (tmp_path / "proto").iterdir()} >= {"umap.png", "nearest.png", "enrichment.csv",
                                                                  "classes.png", "assignments.csv"}
    assert main(["analyse", "selection", "--run", str(swav_run), "--epochs", "2", "--out", str(tmp_path / "sel"),
                 *common]) == 0
    assert len(pd.read_csv(tmp_path / "sel" / "loss_vs_auc.csv")) >= 1
    # a GAP evaluation has no attention to show: a clear error, exit status 2
    main(["evaluate", "linear", "--data", str(synth_dir), "--checkpoint", str(swav_run), "--out",
          str(tmp_path / "gap"), "--epochs", "1", "--device", "cpu"])
    assert main(["analyse", "attention", "--linear-out", str(tmp_path / "gap"), "--out", str(tmp_path / "x"),
                 *common]) == 2
    assert "gap pooling has no attention" in capsys.readouterr().err


@pytest.mark.slow
def test_prototypes_and_loss_vs_auc(synth_dir, swav_run, tmp_path):
    from mammossl_core.analysis import prototypes as P
    from mammossl_core.analysis.selection import loss_vs_auc
    from mammossl_core.data.patches import CLASSES, AnnotatedPatches

    model = P.load_swav(swav_run / "best.pt")
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


@pytest.mark.slow
def test_mae_on_annotated_patches_for_table1(synth_dir, store, tmp_path):
    """ViT-MAE pretrained on the annotated patches (at their own size) gets a patch linear evaluation (Table 1)."""
    from mammossl_core import checkpoint
    from mammossl_core.pretrain import pretrain

    run = tmp_path / "mae"
    pretrain("mae", synth_dir, run, "tiny", progress=False, source="annotated", batch_size=8, max_steps=3)
    assert checkpoint.load(run / "best.pt")["config"]["mae"]["image_size"] == 48  # the tiny annotated patch
    emb, table = patch_embeddings(synth_dir, run / "best.pt", 48)
    assert emb.shape == (len(table), 64) and np.isfinite(emb).all()
    r = patch_linear_eval(synth_dir, run / "best.pt", "tiny", tmp_path / "p", linear_epochs=2)
    assert 0 <= r.accuracy <= 1


@pytest.mark.slow
@pytest.mark.xfail(strict=False, reason="generator 3.x: the 10-epoch supervised MIP of the tiny profile does not "
                   "concentrate its attention on lesions (enrichment about 1), even without mimics: a whole-image "
                   "network from scratch needs more labelled images and epochs (benchmarks/README.md)")
def test_mip_attention_concentrates_on_lesions(tmp_path_factory):
    """At the tiny profile's dataset size (250 synthetic patients, seed 1: not the book's seed), a MIP classifier
    trained end to end (the supervised baseline with MIP pooling, the profile's 10 epochs) puts more of its attention
    mass on the malignant lesions of the test images than their share of the breast: one-sided Wilcoxon p < 0.01 and
    an enrichment above 2.

    On a smaller dataset (150 patients) the attention stayed flat (enrichment about 1), and there the pointing game
    depended on the thread count: an argmax over nearly equal weights is not a stable thing to assert."""
    from mammossl_core.analysis.attention import report
    from mammossl_core.config import get_profile
    from mammossl_core.data.products import build_products
    from mammossl_core.data.synthetic import synthesize

    tmp = tmp_path_factory.mktemp("loc")
    # a test of the attention mechanism, not of the benchmark: conspicuous lesions of one contrast, no mimics
    data = synthesize(tmp / "synth", seed=1, profile="tiny", workers=2, progress=False, unlabeled_patients=0,
                      lesion_contrast_spread=1.0, summation_rate=0.0, asymmetry_rate=0.0, vascular_rate=0.0,
                      skin_calc_rate=0.0)
    build_products(data, get_profile("tiny"), progress=False)
    r = E.supervised(data, pooling="mip", profile="tiny", out=tmp / "sup")
    s = report(data, tmp / "sup", tmp / "rep")
    assert (tmp / "rep" / "heatmaps.png").is_file()
    assert len(pd.read_csv(tmp / "rep" / "localisation.csv")) == s["images"] > 50
    assert s["wilcoxon_p"] < 0.01 and s["enrichment"] > 2, (r.auc, s)


def test_a_model_trained_from_scratch_never_returns_its_starting_state():
    """Validation that prefers the untrained state: a from-scratch head still returns a trained epoch; finetuning
    (``keep_start``, starting from a trained stage-1 head) may keep its start."""
    import torch

    def run(keep_start: bool):
        torch.manual_seed(0)
        head = torch.nn.Linear(3, 1)
        start = {k: v.clone() for k, v in head.state_dict().items()}
        x, y = torch.randn(32, 3), torch.randint(0, 2, (32,)).float()
        scores = iter([1.0, 0.2, 0.3, 0.1])  # the start scores best on validation
        history = E.fit(head, lambda rows, g: torch.nn.functional.binary_cross_entropy_with_logits(
            head(x[rows]).squeeze(1), y[rows]), lambda: next(scores), head.parameters(), np.arange(32), 0.1, 0.0, 3,
            8, 0, "t", keep_start=keep_start)
        same = all(torch.equal(start[k], v) for k, v in head.state_dict().items())
        return history, same

    history, same = run(False)
    assert [h["epoch"] for h in history] == [-1, 0, 1, 2] and not same
    assert run(True)[1]
    with pytest.raises(ValueError, match="untrained starting state"):
        E.fit(torch.nn.Linear(1, 1), None, lambda: 0.5, [torch.nn.Parameter(torch.zeros(1))], np.arange(4), 0.1, 0.0,
              0, 2, 0, "zero epochs")


def test_the_gap_head_is_deterministic_and_reaches_the_optimum_of_its_objective():
    """The converged linear layer (GAP, tiny profile) against the same L2-logistic objective minimised independently
    (SciPy's L-BFGS on the standardised pooled features, the chosen C), and fitted twice to the same weights."""
    from types import SimpleNamespace

    import torch
    from scipy.optimize import minimize

    from mammossl_core.config import get_profile
    from mammossl_core.whole_image import WholeImageClassifier

    rng = np.random.default_rng(0)
    n, m = 90, 5
    label = rng.integers(0, 2, n)
    h = torch.as_tensor(rng.standard_normal((n, m, 2, 3)) + 0.6 * label[:, None, None, None], dtype=torch.float32)
    mask = torch.ones(n, 2, 3, dtype=torch.bool)
    ev = SimpleNamespace(table=pd.DataFrame({"label": label, "patient_id": np.arange(n) // 2}))
    train = np.arange(60)
    e = get_profile("tiny").eval
    assert e.converged_linear_head

    def fitted():
        model = WholeImageClassifier(torch.nn.Identity(), m, "gap")
        history = E._fit_logistic_head(model, lambda rows: (h[rows], mask[rows]), ev, train, e)
        return model, history

    model, history = fitted()
    again, _ = fitted()
    assert all(torch.equal(a, b) for a, b in zip(model.members[0].head.parameters(), again.members[0].head.parameters()))
    c = [r["C"] for r in history if r["chosen"]][0]
    z = h.mean((2, 3)).double().numpy()
    mu, sd = z[train].mean(0), z[train].std(0) + 1e-6
    x, y = (z[train] - mu) / sd, 2 * label[train] - 1

    def objective(v):  # scikit-learn's: 0.5 |w|^2 + C sum log(1 + exp(-y (x.w + b)))
        w, b = v[:-1], v[-1]
        return 0.5 * w @ w + c * np.logaddexp(0, -y * (x @ w + b)).sum()

    ref = minimize(objective, np.zeros(m + 1), method="L-BFGS-B", options={"gtol": 1e-10, "maxiter": 10000}).x
    logits = model.classify(h, mask)[0].detach().double().numpy()
    expect = (z - mu) / sd @ ref[:-1] + ref[-1]
    assert np.abs(logits - expect).max() < 1e-3


@pytest.mark.slow
def test_mip_linear_evaluation_starts_from_gap_and_never_scores_below_it_on_validation(synth_dir, store, tmp_path):
    """At the tiny profile each of MIP's restarts starts from GAP's converged solution (uniform attention) and keeps
    it unless an epoch does better on validation: each member's validation AUC is at least GAP's on the same
    features; the restarts are averaged."""
    gap = E.linear_eval(synth_dir, None, "gap", "tiny", encoder="tiny", linear_epochs=3)
    mip = E.linear_eval(synth_dir, None, "mip", "tiny", tmp_path / "mip", encoder="tiny", linear_epochs=3)
    history = pd.read_csv(tmp_path / "mip" / "history.csv").dropna(subset=["epoch"])
    assert mip.restarts == get_profile("tiny").eval.mip_restarts > 1
    assert sorted(history.restart.unique()) == list(range(mip.restarts))
    for _, h in history.groupby("restart"):
        assert h.val_auc.iloc[0] == pytest.approx(gap.val_auc, abs=1e-6)  # the start (epoch -1) is GAP
        assert h.val_auc.max() >= gap.val_auc - 1e-6


def test_the_gap_head_fits_a_training_set_too_small_to_cross_validate():
    from types import SimpleNamespace

    import torch

    from mammossl_core.config import get_profile
    from mammossl_core.whole_image import WholeImageClassifier

    h = torch.randn(6, 3, 2, 2) + torch.tensor([0, 1, 0, 1, 0, 1]).float()[:, None, None, None]
    ev = SimpleNamespace(table=pd.DataFrame({"label": [0, 1, 0, 1, 0, 1], "patient_id": [0, 1, 2, 3, 4, 5]}))
    model = WholeImageClassifier(torch.nn.Identity(), 3, "gap")
    history = E._fit_logistic_head(model, lambda r: (h[r], torch.ones(len(r), 2, 2, dtype=torch.bool)), ev,
                                   np.arange(4), get_profile("tiny").eval)
    assert [r["C"] for r in history if r["chosen"]] == [1.0] and model.members[0].head.weight.abs().sum() > 0


def test_a_validation_part_of_one_class_warns_instead_of_failing(synth_dir, store, tmp_path):
    data = _fold0_without_malignant(synth_dir, tmp_path, "val")
    with pytest.warns(UserWarning, match=r"fold0.*validation part holds one class"):
        ev = load_eval_data(data, "fold0")
    assert set(ev.table.split) == {"train", "val", "test"}
