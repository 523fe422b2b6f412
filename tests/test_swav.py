"""SwAV trains at every scale: bias-free prototypes adapted by LARS, a freeze and queue start counted in the run's
schedule, prototype usage reported, old checkpoints still loading, and pretraining on several processes from the
artefact cache giving the run of one process."""
import csv
import dataclasses
import math

import pytest
import torch
from lightly.utils.scheduler import cosine_warmup_schedule
from torch import nn

from mammossl_core import artefacts
from mammossl_core.config import get_profile, replace
from mammossl_core.ssl import Schedule, SwAV


def _mlp_swav(cfg):
    """The project's SwAV around a small MLP backbone, so that a run past the unfreeze takes seconds."""
    torch.manual_seed(0)
    m = SwAV(cfg)
    m.backbone = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 64), nn.BatchNorm1d(64), nn.ReLU(),
                               nn.Linear(64, 64))
    m.backbone.dim = 64
    return m


@pytest.mark.parametrize("bf16", [False, True], ids=["fp32", "bf16"])
def test_swav_crosses_the_unfreeze_at_peak_lr_and_stays_finite(bf16):
    """Batch 512, 12-step epochs, warm-up to the tiny profile's peak LARS rate 2.4 over 24 steps, queue from step 0:
    with lightly's biased prototypes this run reached NaN 6 steps after the unfreeze (fp32 and bf16 alike)."""
    torch.set_num_threads(1)
    batch, spe, steps = 512, 12, 60
    prof = get_profile("tiny")
    cfg = replace(prof.pretrain, {"batch_size": batch, "lr_reference_batch": batch,
                                  "swav": {"queue_length": 1024, "queue_start_fraction": 0.0}})
    m = _mlp_swav(cfg)
    total, warmup = 10 * spe, 24
    m.configure(Schedule(spe, total, warmup))
    assert 0 < m.frozen_steps < warmup
    opt, peak = m.build_optimizer(batch)
    assert peak == pytest.approx(prof.pretrain.lr)
    g = torch.Generator().manual_seed(1)
    centres = torch.randn(10, 3 * 8 * 8, generator=g)
    losses, scores, protos = [], [], []
    for s in range(steps):
        for group in opt.param_groups:
            group["lr"] = peak * cosine_warmup_schedule(s, total, 1.0, 0.0, warmup, 0.0)
        x = centres[torch.randint(0, 10, (batch,), generator=g)] + 0.5 * torch.randn(batch, 192, generator=g)
        views = [(x + 0.3 * torch.randn(x.shape, generator=g)).view(batch, 3, 8, 8) for _ in range(2)]
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = m(views, s)
        opt.zero_grad()
        loss.backward()
        m.before_optimizer_step(s)
        opt.step()
        with torch.no_grad():
            z = nn.functional.normalize(m.projection(m.backbone(views[0])).float(), dim=1)
            scores.append(float(m.prototypes(z).abs().max()))
        losses.append(float(loss.detach()))
        protos.append(m.prototypes.heads[0].weight.detach().clone())
    assert all(math.isfinite(v) for v in losses), losses
    assert max(scores) <= 1 + 1e-5, max(scores)
    after = losses[m.frozen_steps:]
    assert sum(after[-10:]) / 10 < 0.7 * sum(after[:10]) / 10, losses
    assert not torch.equal(protos[m.frozen_steps - 1], protos[-1])  # the prototypes trained after the freeze
    assert torch.allclose(protos[0], protos[m.frozen_steps - 1], atol=1e-6)  # and not before it


def test_prototypes_have_no_bias_and_lars_adapts_them():
    m = SwAV(get_profile("tiny").pretrain)
    assert [n for n, _ in m.prototypes.named_parameters()] == ["heads.0.weight"]
    opt, _ = m.build_optimizer(64)
    proto = {id(p) for p in m.prototypes.parameters()}
    unadapted = {id(p) for g in opt.param_groups if g["weight_decay"] == 0 for p in g["params"]}
    adapted = {id(p) for g in opt.param_groups if g["weight_decay"] != 0 for p in g["params"]}
    assert proto and not proto & unadapted and proto <= adapted


@pytest.mark.parametrize("steps_per_epoch", [8, 60, 600])
def test_prototypes_unfreeze_early_in_every_profile(steps_per_epoch):
    for name in ("tiny", "paper"):
        cfg = get_profile(name).pretrain
        total = cfg.epochs * steps_per_epoch
        warmup = int(round(cfg.warmup_fraction * total))
        m = SwAV(dataclasses.replace(cfg, encoder="tiny", hidden_dim=16))
        m.configure(Schedule(steps_per_epoch, total, warmup))
        assert 1 <= m.frozen_steps <= max(1, 0.01 * total), (name, m.frozen_steps, total)
        assert m.queue_start <= 0.1 * total + 1
    # at the paper's schedule the freeze is one epoch of ten warm-up epochs, as in the reference
    cfg = get_profile("paper").pretrain
    m = SwAV(dataclasses.replace(cfg, encoder="tiny", hidden_dim=16))
    m.configure(Schedule(313, 200 * 313, int(round(0.05 * 200 * 313))))
    assert m.frozen_steps == 313


def test_checkpoint_with_prototype_bias_still_loads():
    m = SwAV(get_profile("tiny").pretrain)
    state = m.state_dict()
    state["prototypes.heads.0.bias"] = torch.zeros(m.cfg.swav.prototypes)
    with pytest.warns(UserWarning, match="bias is dropped"):
        SwAV(get_profile("tiny").pretrain).load_state_dict(state)


@pytest.mark.slow
def test_summary_reports_prototype_usage(store, synth_dir):
    run = artefacts.pretrained("swav", synth_dir, "tiny", device="cpu", batch_size=32, epochs=2, max_steps=20)
    import json

    s = json.loads((run / "summary.json").read_text())
    assert 0 < s["prototype_entropy"] <= s["prototype_entropy_max"] + 1e-6
    assert 1 <= s["prototypes_used"] <= s["prototypes"] == 20
    assert s["prototype_weight_change"] > 0


def _losses(run):
    with open(run / "log.csv") as f:
        return [float(r["loss"]) for r in csv.DictReader(f) if r["loss"]]


@pytest.mark.slow
def test_two_processes_from_the_artefact_cache_give_the_loss_of_one(store, synth_dir, monkeypatch, tmp_path):
    """A notebook's call with ``gpus=2`` on CPU (torchrun, gloo) trains the run of one process: the same global
    batches, batch norm and Sinkhorn over the global batch (augmentation off: its draws are per process)."""
    kw = dict(device="cpu", batch_size=16, max_steps=3, augment="none")
    monkeypatch.setenv("MAMMOSSL_CACHE", str(tmp_path / "one"))
    one = artefacts.pretrained("swav", synth_dir, "tiny", gpus=1, **kw)
    monkeypatch.setenv("MAMMOSSL_CACHE", str(tmp_path / "two"))
    two = artefacts.pretrained("swav", synth_dir, "tiny", gpus=2, **kw)
    import json

    assert json.loads((two / "config.json").read_text())["world_size"] == 2
    a, b = _losses(one), _losses(two)
    assert len(a) == len(b) == 3
    assert a == pytest.approx(b, rel=3e-5, abs=1e-6), (a, b)  # the gloo all-reduce sums in another order
    assert (two / "best.pt").is_file() and not (two / "last.pt").exists()
