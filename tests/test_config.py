import dataclasses
import json

import pytest

from mammossl_core.config import get_profile


def test_paper_profile_has_the_paper_numbers():
    p = get_profile("paper")
    assert p.data.image_size == {"ddsm": (1152, 896), "cmmd": (1147, 957)}
    assert p.data.tile_sizes == (64, 96, 128, 256) and p.data.tile_overlap == 0.5 and p.data.max_background == 0.2
    assert p.data.annotated_patch == 224
    assert (p.pretrain.batch_size, p.pretrain.lr, p.pretrain.weight_decay) == (4096, 4.8, 1.5e-6)
    assert (p.pretrain.swav.prototypes, p.pretrain.swav.queue_length) == (20, 3000)
    assert (p.eval.linear_lr, p.eval.linear_weight_decay, p.eval.finetune_lr) == (1e-4, 1e-3, 1e-5)


def test_overrides_and_errors():
    p = get_profile("tiny", pretrain={"epochs": 2})
    assert p.pretrain.epochs == 2 and get_profile("tiny").pretrain.epochs == 1
    with pytest.raises(ValueError, match="epoch"):
        get_profile("tiny", pretrain={"epoch": 1})
    with pytest.raises(ValueError, match="profile"):
        get_profile("huge")


def test_resolve_is_the_one_way_to_a_profile():
    from mammossl_core.config import DEFAULT_PROFILE, from_dict, pretrain_config, resolve

    assert resolve(None).name == DEFAULT_PROFILE
    p = resolve("paper", eval={"linear_epochs": 3})
    assert p.eval.linear_epochs == 3 and resolve(p) is p
    assert resolve(p, pretrain={"epochs": 2}).pretrain.epochs == 2 and p.pretrain.epochs == 200
    assert from_dict(json.loads(p.to_json())) == p  # JSON round trip, lists back to tuples
    assert pretrain_config(json.loads(json.dumps(dataclasses.asdict(p.pretrain)))) == p.pretrain
    with pytest.raises(ValueError, match="unknown configuration section"):
        resolve("tiny", model={"x": 1})


def test_synthetic_parameters_come_from_the_profile():
    from mammossl_core.data.synthetic import SynthParams

    s = SynthParams.of("tiny", "cmmd", lesion_size=1.5)
    t = get_profile("tiny")
    assert (s.height, s.width) == t.data.image_size["cmmd"] and s.lesion_contrast == t.synth.lesion_contrast
    assert s.lesion_size == 1.5
    with pytest.raises(ValueError, match="unknown synthetic parameter"):
        SynthParams.of("tiny", lesion_colour=1)


def test_a_chapters_evaluation_settings_carry_its_epochs_parameter(tmp_path):
    """What a chapter prints about its budget is what its protocols ran with (the smoke test's ``epochs=1``)."""
    from mammossl_core.chapter import Chapter

    prof = get_profile("tiny")
    ch = Chapter("05", "tiny", prof, "cpu", 0, tmp_path, "synthetic", tmp_path, {},
                 {"linear_epochs": 1, "finetune_epochs": 1, "supervised_epochs": 1})
    assert (ch.eval.finetune_epochs, ch.eval.supervised_epochs, ch.eval.finetune_lr) == (1, 1, prof.eval.finetune_lr)
    assert Chapter("05", "tiny", prof, "cpu", 0, tmp_path, "synthetic", tmp_path, {}, {}).eval == prof.eval


def test_method_settings_are_sections_that_override_and_round_trip():
    from mammossl_core.config import from_dict, pretrain_config, resolve

    p = resolve("tiny", pretrain={"swav": {"queue_length": 64}, "epochs": 3})
    assert p.pretrain.swav.queue_length == 64 and p.pretrain.swav.prototypes == 20 and p.pretrain.epochs == 3
    assert from_dict(json.loads(p.to_json())) == p
    with pytest.raises(ValueError, match="pretrain.swav"):
        resolve("tiny", pretrain={"swav": {"queue_lenght": 64}})
    # a checkpoint of mammossl < 0.5 saved the method settings flat
    old = {"encoder": "tiny", "swav_prototypes": 7, "mae_image_size": 48, "byol_momentum": 0.9, "swav_queue_start_step": 3}
    cfg = pretrain_config(old)
    assert (cfg.swav.prototypes, cfg.mae.image_size, cfg.byol.momentum, cfg.encoder) == (7, 48, 0.9, "tiny")


def test_every_method_has_its_config_section():
    from mammossl_core.config import PretrainConfig
    from mammossl_core.ssl import METHODS

    sections = {f.name for f in dataclasses.fields(PretrainConfig)
                if f.default_factory is not dataclasses.MISSING and dataclasses.is_dataclass(f.default_factory())}
    assert sections == set(METHODS)


def test_list_parameters_accept_papermill_strings():
    from mammossl_core.chapter import as_list

    assert as_list("crop,gamma") == ["crop", "gamma"] and as_list(["crop", "gamma"]) == ["crop", "gamma"]
    assert as_list("64, 96", int) == [64, 96] and as_list("0.25,1", float) == [0.25, 1.0] and as_list(None) is None


def test_the_cache_is_the_projects_whatever_the_working_directory(tmp_path, monkeypatch):
    from pathlib import Path

    from mammossl_core.io import cache_root

    monkeypatch.delenv("MAMMOSSL_CACHE", raising=False)
    here = cache_root()
    monkeypatch.chdir(tmp_path)
    assert cache_root() == here == Path(__file__).resolve().parents[1] / ".cache"
    monkeypatch.setenv("MAMMOSSL_CACHE", str(tmp_path / "c"))
    assert cache_root() == tmp_path / "c"
