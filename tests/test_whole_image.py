import numpy as np
import torch

from mammossl_core.encoders import build_trunk, total_stride
from mammossl_core.whole_image import WholeImageClassifier, grid_mask, whole_image_augment


def _receptive_field(trunk, shape, cell):
    """Input pixels that influence one output cell (non-zero gradient), as a boolean image."""
    x = torch.randn(1, 3, *shape, requires_grad=True)
    trunk(x)[0, :, cell[0], cell[1]].sum().backward()
    return (x.grad[0].abs().sum(0) > 0).numpy()


def test_grid_equals_crop_where_receptive_fields_match():
    """Translation equivariance with the trunk's total stride: a crop starting at a multiple of 32 gives the same embeddings as
    the whole image at the corresponding cells, for every cell whose receptive field lies inside the crop."""
    torch.manual_seed(0)
    trunk, _ = build_trunk("tiny")
    trunk.eval()
    STRIDE = total_stride("tiny")
    assert trunk(torch.rand(1, 3, 64, 64)).shape[-1] == 64 // STRIDE
    img = torch.rand(1, 3, 256, 256)
    a, b = 4, 3  # crop offset in cells
    crop = img[:, :, a * STRIDE:, b * STRIDE:]
    with torch.no_grad():
        g_full, g_crop = trunk(img)[0], trunk(crop)[0]
    r, c = g_crop.shape[1:]
    # the receptive field of a cell, measured once on an interior cell, moves by STRIDE per cell
    ci, cj = 12, 12
    rows, cols = np.nonzero(_receptive_field(trunk, (256, 256), (ci, cj)))
    top, left = rows.min() - ci * STRIDE, cols.min() - cj * STRIDE
    checked = 0
    for i in range(r):
        for j in range(c):
            inside = i * STRIDE + top > 0 and j * STRIDE + left > 0  # clear of the crop's top/left border
            same = torch.allclose(g_crop[:, i, j], g_full[:, i + a, j + b], atol=1e-4)
            if inside:
                assert same, (i, j)
                checked += 1
    # a cell whose receptive field reaches past the crop's border differs (zero padding vs real pixels)
    assert not torch.allclose(g_crop[:, 0, 0], g_full[:, a, b], atol=1e-4)
    assert checked > 0


def test_classifier_shapes_and_masked_attention():
    torch.manual_seed(0)
    trunk, m = build_trunk("tiny")
    model = WholeImageClassifier(trunk, m, "mip", 16).eval()
    x = torch.rand(2, 1, 256, 192)
    breast = torch.zeros(2, 256, 192, dtype=torch.bool)
    breast[:, :, :96] = True
    logits, w = model(x, breast)
    r, c = 256 // total_stride("tiny"), 192 // total_stride("tiny")
    assert logits.shape == (2,) and w.shape == (2, r, c)
    gm = grid_mask(breast, r, c)
    assert (w[~gm] == 0).all() and torch.allclose(w.sum((1, 2)), torch.ones(2))


def test_finetune_augmentation_keeps_shapes_and_range():
    x = torch.rand(4, 1, 64, 48)
    m = torch.ones(4, 64, 48, dtype=torch.bool)
    g = torch.Generator().manual_seed(0)
    y, mm = whole_image_augment(x, m, g)
    assert y.shape == x.shape and mm.shape == m.shape and float(y.max()) <= 1 and float(y.min()) >= 0
    y2, _ = whole_image_augment(x, m, torch.Generator().manual_seed(0))
    assert torch.equal(y, y2) and not torch.equal(y, x)
