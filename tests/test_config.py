import pytest

from mammossl_core.config import get_profile


def test_paper_profile_has_the_paper_numbers():
    p = get_profile("paper")
    assert p.data.image_size == {"ddsm": (1152, 896), "cmmd": (1147, 957)}
    assert p.data.tile_sizes == (64, 96, 128, 256) and p.data.tile_overlap == 0.5 and p.data.max_background == 0.2
    assert p.data.annotated_patch == 224
    assert (p.pretrain.batch_size, p.pretrain.lr, p.pretrain.weight_decay) == (4096, 4.8, 1.5e-6)
    assert (p.pretrain.swav_prototypes, p.pretrain.swav_queue_length) == (20, 3000)
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
    import json

    assert from_dict(json.loads(p.to_json())) == p  # JSON round trip, lists back to tuples
    assert pretrain_config(json.loads(json.dumps(p.pretrain.__dict__))) == p.pretrain
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
