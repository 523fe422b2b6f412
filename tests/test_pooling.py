import numpy as np
import pytest
import torch

from mammossl_core.pooling import GAP, MIP, SA, build_pooling


def _mip_by_hand(pool: MIP, h: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Equations (2)-(3) written out in NumPy, one cell at a time."""
    V = pool.V.weight.detach().numpy()
    U = pool.U.weight.detach().numpy()
    w = pool.w.weight.detach().numpy()[0]
    e = np.array([np.exp(w @ (np.tanh(V @ hk) * (1 / (1 + np.exp(-(U @ hk)))))) if m else 0.0
                  for hk, m in zip(h, mask)])
    a = e / e.sum()
    return (a[:, None] * h).sum(0), a


def test_mip_equals_equations_2_and_3():
    torch.manual_seed(0)
    pool = MIP(m=6, n=4)
    h = torch.randn(2, 5, 6)
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 0, 1, 1, 0]], dtype=torch.bool)
    z, a = pool(h, mask)
    for b in range(2):
        z_ref, a_ref = _mip_by_hand(pool, h[b].numpy().astype(np.float64), mask[b].numpy())
        assert np.allclose(a[b].detach().numpy(), a_ref, atol=1e-6)
        assert np.allclose(z[b].detach().numpy(), z_ref, atol=1e-5)
    assert (a[1, ~mask[1]] == 0).all() and torch.allclose(a.sum(1), torch.ones(2))


def test_mip_is_permutation_invariant():
    torch.manual_seed(1)
    pool = MIP(8, 16)
    h = torch.randn(1, 10, 8)
    perm = torch.randperm(10)
    z1, a1 = pool(h)
    z2, a2 = pool(h[:, perm])
    assert torch.allclose(z1, z2, atol=1e-6) and torch.allclose(a1[:, perm], a2, atol=1e-6)


def test_gap_is_mean_over_breast_cells():
    h = torch.randn(2, 6, 3)
    mask = torch.tensor([[1, 1, 0, 0, 1, 0], [1] * 6], dtype=torch.bool)
    z, w = GAP()(h, mask)
    assert torch.allclose(z[0], h[0, mask[0]].mean(0), atol=1e-6)
    assert torch.allclose(z[1], h[1].mean(0), atol=1e-6)
    assert (w[0, ~mask[0]] == 0).all()


def test_sa_ignores_masked_cells_and_returns_weights():
    torch.manual_seed(0)
    sa = SA(16, heads=4).eval()
    h = torch.randn(1, 7, 16)
    mask = torch.tensor([[1, 1, 1, 0, 0, 1, 1]], dtype=torch.bool)
    z, w = sa(h, mask)
    h2 = h.clone()
    h2[0, 3:5] = 100.0  # change only masked cells
    z2, _ = sa(h2, mask)
    assert torch.allclose(z, z2, atol=1e-5)
    assert z.shape == (1, 16) and w.shape == (1, 7) and float(w[0, 3:5].detach().abs().max()) == 0.0


def test_bad_settings_are_clear_errors():
    with pytest.raises(ValueError, match="unknown pooling"):
        build_pooling("max", 8)
    with pytest.raises(ValueError, match="shape"):
        GAP()(torch.randn(2, 3, 4), torch.ones(2, 4, dtype=torch.bool))


def test_mip_started_as_gap_pools_exactly_as_gap():
    """MIP contains GAP: with ``w = 0`` its attention is uniform over the breast cells (the start of its converged
    linear evaluation); SA cannot start there and says so."""
    from mammossl_core.pooling import GAP, MIP, SA

    torch.manual_seed(0)
    h, mask = torch.randn(3, 12, 8), torch.rand(3, 12) > 0.3
    mip = MIP(8, 4)
    assert not torch.allclose(mip(h, mask)[0], GAP()(h, mask)[0])
    mip.start_as_gap()
    assert torch.allclose(mip(h, mask)[0], GAP()(h, mask)[0], atol=1e-6)
    assert MIP.starts_as_gap and GAP.starts_as_gap and not SA.starts_as_gap
