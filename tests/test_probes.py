"""The latent-factor probes (chapter 3): factor definitions on the generator's findings, a floor that is exactly
chance, a probe that finds a factor written into the features, determinism."""
import numpy as np
import pytest
import torch
from torch import nn

from mammossl_core.analysis.probes import FACTORS, _fit_predict, findings, has_factors, probe_factors


class Constant(nn.Module):
    """An encoder that sees nothing: every crop embeds to zeros."""

    def forward(self, x):
        return torch.zeros(len(x), 4)


def test_factors_are_defined_on_their_findings_only(synth_dir, store):
    t = findings(synth_dir)
    assert has_factors(synth_dir) and set(t.source) == {"lesion", "mimic"} and set(t.split) == {"train", "test"}
    labels = {f.name: f.label(t) for f in FACTORS}
    margin = labels["mass margin (circumscribed or not)"]
    assert margin[t.kind != "mass"].isna().all() and margin[t["shape"] == "distortion"].isna().all()
    assert set(margin.dropna()) <= {"circumscribed", "ill-defined"}
    assert set(labels["calcification form"].dropna()) <= {"punctate", "rim", "fine-pleomorphic", "fine-linear"}
    assert labels["mimic kind"][t.source == "lesion"].isna().all()
    assert (labels["lesion or mimic"] == t.source).all()


def test_a_blind_encoder_scores_chance_and_a_probe_is_deterministic(synth_dir, store):
    encoders = {"blind": Constant(), "pixels": nn.Sequential(nn.AdaptiveAvgPool2d(6), nn.Flatten())}
    probes = probe_factors(synth_dir, encoders, "blind", 48, min_per_class=2, n_boot=100)
    assert {p.factor for p in probes} >= {"lesion or mimic", "mimic kind"}
    for p in probes:
        if p.encoder == "blind":
            assert p.balanced_accuracy == pytest.approx(p.chance) and p.vs_random is None
        else:
            assert p.vs_random.diff == pytest.approx(p.balanced_accuracy - p.chance)
    assert probes == probe_factors(synth_dir, encoders, "blind", 48, min_per_class=2, n_boot=100)
    with pytest.raises(ValueError, match="random='none'"):
        probe_factors(synth_dir, encoders, "none", 48)


def test_the_probe_finds_a_factor_written_into_the_features():
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1, 2], 40)
    emb = rng.standard_normal((120, 16))
    emb[:, 3] += 8 * y  # one feature carries the class; the rest is noise
    groups = np.arange(120) // 2
    train = rng.random(120) < 0.6
    pred = _fit_predict(emb, y, groups, train, folds=3)
    assert (pred[~train] == y[~train]).mean() > 0.95
