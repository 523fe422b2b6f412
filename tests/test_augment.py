import numpy as np
import pytest
import torch

from mammossl_core.augment import TRANSFORMS, MammoAugment, augmentation_grid


def _batch(n=6, size=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    # 16-bit data: values on the 1/65535 grid, using the full dynamic range
    return torch.randint(0, 65536, (n, 1, size, size), generator=g).float() / 65535.0


@pytest.mark.parametrize("name", list(TRANSFORMS))
def test_each_transform_range_dtype_shape_and_per_sample_randomness(name):
    x = _batch()
    x[:] = x[0]  # identical inputs: any difference between outputs comes from per-sample parameters
    y = TRANSFORMS[name](x, torch.Generator().manual_seed(1))
    assert y.shape == x.shape and y.dtype == torch.float32
    assert float(y.min()) >= 0 and float(y.max()) <= 1
    assert not torch.allclose(y[0], y[1]), "parameters must differ between samples"


def test_pipeline_deterministic_under_seed_and_three_channels():
    aug = MammoAugment("crop+gamma+contrast", size=32)
    x = _batch()
    a = aug(x, torch.Generator().manual_seed(5))
    b = aug(x, torch.Generator().manual_seed(5))
    c = aug(x, torch.Generator().manual_seed(6))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.shape == (6, 3, 32, 32) and torch.equal(a[:, 0], a[:, 2])  # duplicated, no pseudo-colour


def test_crop_resizes_back_and_resizes_input():
    x = _batch(size=48)
    y = MammoAugment("crop", size=32, channels=1)(x, torch.Generator().manual_seed(0))
    assert y.shape == (6, 1, 32, 32)
    y = TRANSFORMS["crop"](x, torch.Generator().manual_seed(0))
    assert y.shape == x.shape


def test_sixteen_bit_precision_is_kept():
    # a ramp inside a narrow 16-bit window (what 8-bit data would collapse to 2 levels)
    ramp = (30000 + torch.arange(32 * 32).reshape(1, 1, 32, 32) % 200).float() / 65535.0
    y = MammoAugment("gamma+contrast", channels=1)(ramp, torch.Generator().manual_seed(0))
    assert len(torch.unique(y)) > 150
    assert len(np.unique(np.round(ramp.numpy() * 255))) <= 2


def test_equalize_flattens_histogram():
    x = _batch(n=2) ** 4  # skewed histogram
    y = TRANSFORMS["equalize"](x, torch.Generator().manual_seed(0))
    assert float((y.mean() - 0.5).abs()) < float((x.mean() - 0.5).abs())


def test_unknown_transform_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown transform"):
        MammoAugment("crop+solarize")


def test_grid_figure():
    fig = augmentation_grid(_batch(n=3))
    assert len(fig.axes) == 3 * 9
