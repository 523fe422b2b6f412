import csv
import json

import pytest
import torch

from mammossl_core import checkpoint
from mammossl_core.pretrain import NonFiniteLossError, pretrain
from mammossl_core.results import Evaluation
from mammossl_core.ssl import METHODS


def _losses(run):
    with open(run / "log.csv") as f:
        return {int(r["step"]): float(r["loss"]) for r in csv.DictReader(f) if r["loss"]}


@pytest.mark.slow
@pytest.mark.parametrize("method", sorted(METHODS))
def test_loss_falls(store, synth_dir, tmp_path, method):
    kw = dict(batch_size=8) if method == "mae" else dict(batch_size=32)
    pretrain(method, synth_dir, tmp_path / method, "tiny", progress=False, epochs=4, max_steps=40,
             swav={"queue_start_fraction": 1.0}, **kw)
    losses = list(_losses(tmp_path / method).values())
    k = 6
    assert sum(losses[-k:]) / k < sum(losses[:k]) / k, losses
    assert (tmp_path / method / "best.pt").is_file() and (tmp_path / method / "config.json").is_file()


class _Kill(Exception):
    pass


@pytest.mark.slow
@pytest.mark.parametrize("method", ["byol", "swav"])
def test_kill_and_resume_is_exact(store, synth_dir, tmp_path, method):
    kw = dict(batch_size=16, epochs=2, checkpoint_every=4, swav={"queue_length": 32, "queue_start_fraction": 0.0})
    pretrain(method, synth_dir, tmp_path / "full", "tiny", progress=False, max_steps=10, **kw)

    def kill(step):
        if step == 6:
            raise _Kill()

    with pytest.raises(_Kill):
        pretrain(method, synth_dir, tmp_path / "cut", "tiny", progress=False, max_steps=10, on_step=kill, **kw)
    cut_state = checkpoint.load(tmp_path / "cut" / "last.pt")
    assert cut_state["step"] == 4 and "optimizer" in cut_state  # last.pt is the resumable state
    pretrain(method, synth_dir, tmp_path / "cut", "tiny", progress=False, max_steps=10, resume=True, **kw)
    full, cut = _losses(tmp_path / "full"), _losses(tmp_path / "cut")
    assert sorted(cut) == sorted(full) == list(range(1, 11))
    for s in range(5, 11):
        assert cut[s] == pytest.approx(full[s], rel=1e-6, abs=1e-7), (s, cut[s], full[s])


@pytest.mark.slow
def test_non_finite_loss_stops_and_keeps_last_checkpoint(store, synth_dir, tmp_path, monkeypatch):
    from mammossl_core.ssl.byol import BYOL

    orig = BYOL.forward

    def poisoned(self, views, step=0):
        loss = orig(self, views, step)
        return loss * float("nan") if step >= 5 else loss

    monkeypatch.setattr(BYOL, "forward", poisoned)
    with pytest.raises(NonFiniteLossError, match="non-finite loss at step 5"):
        pretrain("byol", synth_dir, tmp_path / "nan", "tiny", progress=False, batch_size=16, max_steps=10,
                 checkpoint_every=4)
    state = checkpoint.load(tmp_path / "nan" / "last.pt")
    assert state["step"] == 4
    assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())


@pytest.mark.slow
def test_cached_run_keeps_the_selected_model_and_drops_the_resume_state(store, synth_dir):
    from mammossl_core import artefacts
    from mammossl_core.loading import patch_encoder

    run = artefacts.pretrained("byol", synth_dir, "tiny", device="cpu", batch_size=16, max_steps=3)
    assert sorted(p.name for p in run.glob("*.pt")) == ["best.pt"]
    best = checkpoint.load(run / "best.pt")
    assert best["step"] == 3 and "optimizer" not in best
    assert json.loads((run / "summary.json").read_text())["weight_change"]  # measured before init.pt went
    assert patch_encoder(run)(torch.zeros(2, 3, 32, 32)).shape[0] == 2
    stamp = (run / "best.pt").stat().st_mtime_ns
    assert artefacts.pretrained("byol", synth_dir, "tiny", device="cpu", batch_size=16, max_steps=3) == run
    assert (run / "best.pt").stat().st_mtime_ns == stamp  # reused, not trained again


def test_checkpoint_method_and_encoder_are_checked(tmp_path):
    checkpoint.save(tmp_path / "c.pt", {"method": "byol", "encoder": "tiny", "model": {"w": torch.ones(2)}})
    assert checkpoint.load(tmp_path / "c.pt", method="byol")["model"]["w"].sum() == 2
    with pytest.raises(checkpoint.CheckpointError, match="method 'byol'"):
        checkpoint.load(tmp_path / "c.pt", method="swav")
    with pytest.raises(checkpoint.CheckpointError, match="encoder 'tiny'"):
        checkpoint.load(tmp_path / "c.pt", encoder="resnet50")
    # arbitrary pickled objects are refused
    torch.save({"format": 1, "obj": _Kill()}, tmp_path / "evil.pt")
    with pytest.raises(checkpoint.CheckpointError, match="safely"):
        checkpoint.load(tmp_path / "evil.pt")


def test_explicit_overrides_win_over_per_method_choices():
    """A batch size given explicitly (the smoke test's caps) is kept for annotated pretraining and ViT-MAE."""
    from mammossl_core.config import get_profile
    from mammossl_core.pretrain import method_config

    prof = get_profile("paper", pretrain={"batch_size": 4, "source": "annotated"})
    assert method_config("byol", prof, {"batch_size": 4, "source": "annotated"}).batch_size == 4
    assert method_config("byol", prof, {"source": "annotated"}).batch_size == prof.pretrain.annotated_batch_size
    assert method_config("mae", get_profile("paper", pretrain={"batch_size": 4}), {"batch_size": 4}).batch_size == 4


def test_an_evaluation_is_computed_once_whatever_its_name_and_spelt_defaults(tmp_path, monkeypatch):
    """Two chapters asking for the same evaluation (one passing a default explicitly, under another name) share it;
    a different argument computes a new one."""
    from mammossl_core import artefacts

    monkeypatch.setenv("MAMMOSSL_CACHE", str(tmp_path))
    calls = []

    def protocol(data, pooling="gap", bn=None, profile=None, out=None):
        calls.append((pooling, bn))
        return Evaluation("linear", pooling=pooling, auc=0.5 + len(calls)).save(out)

    a = artefacts.evaluation(protocol, "linear-swav-gap", data="d", bn=None)
    b = artefacts.evaluation(protocol, "linear-swav-tiny-gap", data="d")
    assert a == b and len(calls) == 1
    c = artefacts.evaluation(protocol, "linear-swav-tiny-gap", data="d", pooling="mip")
    assert c.auc == 2.5 and len(calls) == 2
