"""Run by tests/test_distributed.py under torchrun (gloo, CPU): one step of a method on a slice of a fixed batch."""
import sys

import torch

from mammossl_core import distributed as D
from mammossl_core.config import get_profile
from mammossl_core.ssl import build_method


def fixed_views(n=16, size=32, seed=1):
    g = torch.Generator().manual_seed(seed)
    return [torch.rand(n, 3, size, size, generator=g), torch.rand(n, 3, size, size, generator=g)]


def run(method: str, out: str) -> None:
    dev = D.setup("cpu")
    cfg = get_profile("tiny").pretrain
    torch.manual_seed(0)
    model = D.convert_sync_batchnorm(build_method(method, cfg), dev)
    ddp = torch.nn.parallel.DistributedDataParallel(model, static_graph=True) if D.is_dist() else model
    views = fixed_views()
    n, w, r = len(views[0]), D.world_size(), D.rank()
    local = [v[r * n // w:(r + 1) * n // w] for v in views]
    loss = ddp(local, 0).mean()
    loss.backward()
    result = {"loss": D.all_reduce_mean(loss.detach()),
              "grads": {k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None}}
    if D.is_main():
        torch.save(result, out)
    D.cleanup()


def run_sinkhorn(out: str) -> None:
    from lightly.loss.swav_loss import sinkhorn

    D.setup("cpu")
    g = torch.Generator().manual_seed(2)
    scores = torch.randn(16, 20, generator=g)
    n, w, r = 16, D.world_size(), D.rank()
    q = sinkhorn(scores[r * n // w:(r + 1) * n // w], gather_distributed=True)
    gathered = [torch.zeros_like(q) for _ in range(w)]
    if D.is_dist():
        torch.distributed.all_gather(gathered, q)
    else:
        gathered = [q]
    if D.is_main():
        torch.save({"q": torch.cat(gathered)}, out)
    D.cleanup()


if __name__ == "__main__":
    if sys.argv[1] == "sinkhorn":
        run_sinkhorn(sys.argv[2])
    else:
        run(sys.argv[1], sys.argv[2])
