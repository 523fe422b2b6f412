"""Every ``torch.distributed`` call of the project, with single-process fallbacks.

A run launched by ``torchrun`` (``RANK``/``WORLD_SIZE``/``LOCAL_RANK`` in the environment) joins a process group:
NCCL on GPUs, gloo on CPU (the tests). Without those variables everything runs in one process.
"""
from __future__ import annotations

import os
from datetime import timedelta

import torch
import torch.distributed as dist
from torch import nn


def is_dist() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if is_dist() else 0


def world_size() -> int:
    return dist.get_world_size() if is_dist() else 1


def is_main() -> bool:
    return rank() == 0


def setup(device: str | None = None) -> torch.device:
    """Join the process group if launched by torchrun and return this process's device."""
    use_cuda = torch.cuda.is_available() and (device is None or device.startswith("cuda"))
    if "WORLD_SIZE" in os.environ and int(os.environ["WORLD_SIZE"]) > 1 and not is_dist():
        backend = "nccl" if use_cuda else "gloo"
        if use_cuda:
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
        dist.init_process_group(backend, timeout=timedelta(minutes=30))
    if use_cuda:
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)) if is_dist() else torch.cuda.current_device())
    return torch.device(device or "cpu")


def cleanup() -> None:
    global _BN_GROUP
    _BN_GROUP = None
    if is_dist():
        dist.destroy_process_group()


def barrier() -> None:
    if is_dist():
        dist.barrier()


def all_reduce_mean(x: torch.Tensor) -> torch.Tensor:
    """Mean of ``x`` over processes (no gradient); ``x`` itself in a single process."""
    if not is_dist():
        return x
    y = x.detach().clone()
    dist.all_reduce(y)
    return y / world_size()


_BN_GROUP = None


def _bn_group():
    """A process group of its own for batch-norm statistics, so that its collectives in the backward pass
    never interleave with DDP's asynchronous gradient all-reduces on the default group."""
    global _BN_GROUP
    if _BN_GROUP is None:
        _BN_GROUP = dist.new_group(backend="gloo")
    return _BN_GROUP


class GlobalBatchNorm(nn.modules.batchnorm._BatchNorm):
    """Batch normalisation over the global batch of all processes, for CPU process groups (gloo).

    ``torch.nn.SyncBatchNorm`` only runs on GPUs; this module gives the tests on CPU the same semantics
    (statistics over the global batch, gradients through the all-reduce).
    """

    def _check_input_dim(self, x):
        if x.dim() < 2:
            raise ValueError(f"expected at least 2D input (got {x.dim()}D)")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and is_dist()):
            return super().forward(x)
        from torch.distributed.nn.functional import all_reduce

        dims = [0] + list(range(2, x.dim()))
        group = _bn_group()
        count = torch.tensor(float(x.numel() // x.shape[1]))
        dist.all_reduce(count, group=group)
        stats = all_reduce(torch.stack([x.sum(dims), (x * x).sum(dims)]), group=group)
        mean = stats[0] / count
        var = stats[1] / count - mean * mean
        if self.track_running_stats:
            with torch.no_grad():
                m = self.momentum if self.momentum is not None else 0.1
                self.running_mean.mul_(1 - m).add_(m * mean)
                self.running_var.mul_(1 - m).add_(m * var * count / max(count - 1, 1))
                self.num_batches_tracked += 1
        shape = [1, -1] + [1] * (x.dim() - 2)
        y = (x - mean.view(shape)) / torch.sqrt(var.view(shape) + self.eps)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        return y


def wrap_ddp(model: nn.Module, device: torch.device) -> nn.Module:
    """``model`` in DistributedDataParallel when launched by torchrun (``model`` itself otherwise).

    * ``static_graph=True``: the same parameters are used by both views every step; without it, DDP's gradient
      reduction and the batch-norm collectives of the backward pass disagree (tests/test_distributed.py).
    * ``broadcast_buffers=False``: DDP would otherwise copy rank 0's buffers to every process before each forward,
      SwAV's queue included, so that every process would queue rank 0's projections only (the test caught it).
      The batch norms' running statistics come from global-batch statistics and agree on every process anyway.
    """
    if not is_dist():
        return model
    return nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None,
                                               static_graph=True, broadcast_buffers=False)


def convert_sync_batchnorm(model: nn.Module, device: torch.device) -> nn.Module:
    """Make every batch norm of ``model`` see the global batch: SyncBatchNorm on GPUs, :class:`GlobalBatchNorm` on CPU."""
    if not is_dist():
        return model
    if device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(model)
    return _convert_cpu(model)


def _convert_cpu(module: nn.Module) -> nn.Module:
    out = module
    if isinstance(module, nn.modules.batchnorm._BatchNorm) and not isinstance(module, GlobalBatchNorm):
        out = GlobalBatchNorm(module.num_features, module.eps, module.momentum, module.affine, module.track_running_stats)
        if module.affine:
            with torch.no_grad():
                out.weight.copy_(module.weight)
                out.bias.copy_(module.bias)
        if module.track_running_stats:
            out.running_mean.copy_(module.running_mean)
            out.running_var.copy_(module.running_var)
            out.num_batches_tracked.copy_(module.num_batches_tracked)
    for name, child in module.named_children():
        out.add_module(name, _convert_cpu(child))
    return out
