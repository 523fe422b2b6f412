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
