"""One way from a checkpoint to a model (mammossl_core.loading), for every method and every protocol."""
import pandas as pd
import pytest
import torch

from mammossl_core import checkpoint
from mammossl_core.evaldata import load_eval_data
from mammossl_core.evaluate import linear_eval, supervised
from mammossl_core.loading import classifier, grid_encoder, patch_encoder, profile_of
from mammossl_core.pretrain import pretrain
from mammossl_core.ssl import METHODS


@pytest.mark.slow
@pytest.mark.parametrize("method", sorted(METHODS))
def test_every_method_gives_patch_and_grid_encoders(store, synth_dir, tmp_path, method):
    run = tmp_path / method
    pretrain(method, synth_dir, run, "tiny", progress=False, max_steps=2, batch_size=8)
    assert checkpoint.load(run / "best.pt")["profile"] == "tiny" and profile_of(run) == "tiny"
    x = torch.rand(2, 3, 32, 32)
    emb = patch_encoder(run)(x)
    trunk, m, meta = grid_encoder(run)
    trunk.eval()
    grid = trunk(torch.rand(1, 3, 256, 192))
    assert meta["method"] == method and emb.shape == (2, m) and grid.shape[:2] == (1, m)
    with torch.no_grad():  # the patch embedding is the mean over the grid of the same input (class token excluded)
        assert torch.allclose(patch_encoder(run)(x), trunk(x).mean((2, 3)), atol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("encoder_from", ["checkpoint", "random"])
def test_classifier_round_trip_gives_the_saved_scores(store, synth_dir, tmp_path, encoder_from):
    """A saved evaluation comes back as the model that wrote predictions.csv (same scores)."""
    ck = None
    if encoder_from == "checkpoint":
        pretrain("byol", synth_dir, tmp_path / "run", "tiny", progress=False, max_steps=2, batch_size=16)
        ck = tmp_path / "run" / "best.pt"
    linear_eval(synth_dir, ck, "mip", "tiny", tmp_path / "lin", linear_epochs=2)
    supervised(synth_dir, pooling="mip", profile="tiny", out=tmp_path / "sup", supervised_epochs=1)
    ev = load_eval_data(synth_dir)
    for out in (tmp_path / "lin", tmp_path / "sup"):  # predictions.csv is scored in eval mode, as classifier() gives
        model = classifier(out)
        saved = pd.read_csv(out / "predictions.csv", dtype={"image_id": str})
        rows = ev.table.index.to_numpy()[:12]
        with torch.no_grad():
            x, mask = ev.images(rows, "cpu")
            scores = torch.sigmoid(model(x, mask)[0]).numpy()
        assert scores == pytest.approx(saved.score.to_numpy()[:12], abs=2e-3)  # float16 grid cache at most
