"""LARS (paper V.A) as multi-tensor (``torch._foreach_*``) operations.

lightly's :class:`lightly.utils.lars.LARS` updates one parameter at a time and tests ``p_norm != 0`` in Python,
which on a GPU is a device-to-host sync for each of ResNet-50's ~160 parameters every step: the step becomes
launch- and sync-bound. :class:`ForeachLARS` computes the same update with one multi-tensor kernel per operation
and no sync. Same semantics (tests/test_lars.py checks it against lightly's to 1e-6 over several steps):

* parameters of a group with ``weight_decay == 0`` (biases, normalisation) skip both weight decay and the layer-wise
  scaling; a parameter or gradient of norm 0 skips them too;
* ``lars_lr = trust_coefficient * ||p|| / (||g|| + weight_decay * ||p|| + eps)``, ``d = lars_lr * (g + wd * p)``;
* SGD momentum (PyTorch convention, optional dampening and Nesterov), ``p -= lr * d``;
* the state (``momentum_buffer`` per parameter) is lightly's, so checkpoints load in either optimiser.

Example::

    >>> model = torch.nn.Linear(10, 2)
    >>> opt = ForeachLARS([{"params": [model.weight], "weight_decay": 1e-6},
    ...                    {"params": [model.bias], "weight_decay": 0.0}], lr=0.3, momentum=0.9)
    >>> model(torch.randn(4, 10)).sum().backward()
    >>> opt.step()
"""
from __future__ import annotations

import torch
from lightly.utils.lars import LARS


class ForeachLARS(LARS):
    """lightly's LARS with a multi-tensor :meth:`step` (same arguments, defaults and state)."""

    @torch.no_grad()
    def step(self, closure=None):  # type: ignore[override]
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            grads = [p.grad for p in params]
            wd, momentum = group["weight_decay"], group["momentum"]
            if wd != 0:
                p_norm = torch.stack(torch._foreach_norm(params))
                g_norm = torch.stack(torch._foreach_norm(grads))
                scaled = (p_norm != 0) & (g_norm != 0)
                lars_lr = torch.where(scaled, group["trust_coefficient"] * p_norm
                                      / (g_norm + p_norm * wd + group["eps"]), torch.ones_like(p_norm))
                decay = torch.where(scaled, torch.full_like(p_norm, wd), torch.zeros_like(p_norm))
                # (g + decay * p) * lars_lr, per parameter, without leaving the device
                d_p = torch._foreach_mul(params, list(decay.unbind()))
                torch._foreach_add_(d_p, grads)
                torch._foreach_mul_(d_p, list(lars_lr.unbind()))
            else:
                d_p = grads
            if momentum != 0:
                state = [self.state[p] for p in params]
                old = [k for k, st in enumerate(state) if "momentum_buffer" in st]
                for st, d in zip(state, d_p):
                    if "momentum_buffer" not in st:  # the first step: the buffer starts as the update
                        st["momentum_buffer"] = torch.clone(d).detach()
                if old:
                    bufs_old = [state[k]["momentum_buffer"] for k in old]
                    torch._foreach_mul_(bufs_old, momentum)
                    torch._foreach_add_(bufs_old, [d_p[k] for k in old], alpha=1 - group["dampening"])
                bufs = [st["momentum_buffer"] for st in state]
                d_p = torch._foreach_add(d_p, bufs, alpha=momentum) if group["nesterov"] else bufs
            torch._foreach_add_(params, d_p, alpha=-group["lr"])
        return loss
