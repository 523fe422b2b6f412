"""GPU checks (skipped without CUDA): the trainer's bf16 / channels-last path runs and its loss is finite."""
import pytest
import torch


@pytest.mark.gpu
def test_pretrain_on_gpu_bf16(synth_dir, store, tmp_path):
    from mammossl_core.pretrain import pretrain

    s = pretrain("swav", synth_dir, tmp_path / "gpu", "tiny", device="cuda", progress=False, batch_size=32,
                 max_steps=5)
    assert s["steps"] == 5 and s["last_loss"] == s["last_loss"]


@pytest.mark.gpu
def test_augment_on_gpu_matches_shapes():
    from mammossl_core.augment import MammoAugment, TRANSFORMS

    x = torch.rand(16, 1, 96, 96, device="cuda")
    y = MammoAugment("+".join(TRANSFORMS))(x, torch.Generator(device="cuda").manual_seed(0))
    assert y.device.type == "cuda" and y.shape == (16, 3, 96, 96) and float(y.max()) <= 1
