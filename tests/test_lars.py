"""ForeachLARS computes lightly's LARS update (same groups, exclusions, trust coefficient, momentum, state)."""
import copy

import pytest
import torch
import torchvision
from lightly.models.utils import get_weight_decay_parameters
from lightly.utils.lars import LARS

from mammossl_core.lars import ForeachLARS


def _groups(model, wd=1e-4):
    decay, no_decay = get_weight_decay_parameters([model])
    return [{"params": decay, "weight_decay": wd}, {"params": no_decay, "weight_decay": 0.0}]


def _train(opt_cls, model, steps, dtype, device, **kw):
    opt = opt_cls(_groups(model), **kw)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(8, 3, 32, 32, generator=g).to(device, dtype)
    y = torch.randint(0, 10, (8,), generator=g).to(device)
    for step in range(steps):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        if step == 1:  # a zero gradient is left out of the layer-wise scaling
            model.fc.weight.grad.zero_()
        opt.step()
    return model, opt


def _compare(dtype, device, steps, tol, **kw):
    torch.manual_seed(0)
    ref = torchvision.models.resnet18(num_classes=10).to(device, dtype)
    new = copy.deepcopy(ref)
    ref, ref_opt = _train(LARS, ref, steps, dtype, device, **kw)
    new, new_opt = _train(ForeachLARS, new, steps, dtype, device, **kw)
    moved = max(float((a - b).abs().max()) for a, b in zip(ref.parameters(), torchvision.models.resnet18(
        num_classes=10).to(device, dtype).parameters()))
    assert moved > 1e-3  # the optimiser did move the weights
    for (name, a), b in zip(ref.named_parameters(), new.parameters()):
        err = float((a.detach() - b.detach()).abs().max())
        assert err <= tol, (name, err)
    for p_ref, p_new in zip(ref.parameters(), new.parameters()):
        assert ("momentum_buffer" in ref_opt.state[p_ref]) == ("momentum_buffer" in new_opt.state[p_new])
        if "momentum_buffer" in ref_opt.state[p_ref]:
            assert torch.allclose(ref_opt.state[p_ref]["momentum_buffer"], new_opt.state[p_new]["momentum_buffer"],
                                  atol=tol * 10)


@pytest.mark.parametrize("kw", [dict(lr=0.5, momentum=0.9), dict(lr=0.5, momentum=0.9, nesterov=True),
                                dict(lr=0.5, momentum=0.9, dampening=0.1), dict(lr=0.5, momentum=0.0)])
def test_foreach_lars_matches_lightly_in_float64(kw):
    _compare(torch.float64, "cpu", steps=5, tol=1e-12, **kw)


def test_foreach_lars_matches_lightly_in_float32_to_1e6():
    # float32: the norms are reduced in another order, so the results differ by rounding only (~2e-7 here)
    _compare(torch.float32, "cpu", steps=3, tol=1e-6, lr=0.1, momentum=0.9)


@pytest.mark.gpu
def test_foreach_lars_matches_lightly_on_gpu():
    # float64: cuDNN's float32 convolutions may use TF32, which would hide the optimiser under the model's rounding
    _compare(torch.float64, "cuda", steps=3, tol=1e-10, lr=0.5, momentum=0.9)


def test_state_dict_loads_across_the_two():
    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=10)
    _, opt = _train(LARS, model, 2, torch.float32, "cpu", lr=0.1, momentum=0.9)
    other = ForeachLARS(_groups(model), lr=0.1, momentum=0.9)
    other.load_state_dict(opt.state_dict())
    p = next(model.parameters())
    assert torch.equal(other.state[p]["momentum_buffer"], opt.state[p]["momentum_buffer"])
