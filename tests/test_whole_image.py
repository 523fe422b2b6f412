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


def test_restarts_average_their_members_and_old_files_load_as_member_0():
    from mammossl_core.loading import member_keys

    torch.manual_seed(0)
    model = WholeImageClassifier(torch.nn.Identity(), 8, "mip", 4, restarts=3).eval()
    for member in model.members:
        torch.nn.init.normal_(member.pool.w.weight)
    h, mask = torch.randn(5, 8, 3, 2), torch.rand(5, 3, 2) > 0.3
    logits, w = model.classify(h, mask)
    own = [model.classify(h, mask, member=k) for k in range(3)]
    assert not torch.allclose(own[0][0], own[1][0])  # independent starts
    assert torch.allclose(logits, torch.stack([o[0] for o in own]).mean(0))
    assert torch.allclose(w, torch.stack([o[1] for o in own]).mean(0)) and torch.allclose(w.sum((1, 2)), torch.ones(5))
    single = WholeImageClassifier(torch.nn.Identity(), 8, "mip", 4)
    old = {k.removeprefix("members.0."): v for k, v in model.state_dict().items() if not k.startswith("members.1")
           and not k.startswith("members.2")}
    single.load_state_dict(member_keys(old))
    assert torch.equal(single.eval().classify(h, mask)[0], own[0][0])


def test_finetune_augmentation_keeps_shapes_and_range():
    x = torch.rand(4, 1, 64, 48)
    m = torch.ones(4, 64, 48, dtype=torch.bool)
    g = torch.Generator().manual_seed(0)
    y, mm = whole_image_augment(x, m, g)
    assert y.shape == x.shape and mm.shape == m.shape and float(y.max()) <= 1 and float(y.min()) >= 0
    y2, _ = whole_image_augment(x, m, torch.Generator().manual_seed(0))
    assert torch.equal(y, y2) and not torch.equal(y, x)
